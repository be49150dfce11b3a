package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/ops"
	"github.com/intake/intake/internal/outbox"
	"github.com/intake/intake/internal/postgres"
)

// run is the whole worker: config, database, River client, relay, ops
// listener, and the shutdown order that loses nothing. It returns when ctx
// is cancelled and running jobs have finished or been cancelled.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	// Config.
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := logging.New(stdout, cfg.LogLevel, "intake-worker")
	logger.Info("starting", "config", cfg)

	// Database.
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, &postgres.PoolOpts{
		// Every email and analytics worker may hold a connection, plus the
		// relay and River's own maintenance.
		MaxConns:        max(cfg.DBMaxConns, int32(cfg.EmailConcurrency+cfg.AnalyticsConcurrency+4)),
		ApplicationName: "intake-worker",
		// The worker's transactions never wait on it between statements.
		IdleInTransactionTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer func() {
		if !postgres.ClosePool(pool, 2*time.Second) {
			logger.Warn("database connections still closing at exit; leaving them to the operating system")
		}
	}()
	migrator, err := migrate.New(pool, logger)
	if err != nil {
		return err
	}
	defer migrator.Close()
	store := postgres.NewStore(pool)

	// Wiring.
	sender, err := mail.NewSender(mail.SMTPConfig{
		Host:     cfg.SMTPHost,
		Port:     cfg.SMTPPort,
		TLS:      cfg.SMTPTLS,
		Username: cfg.SMTPUsername,
		Password: cfg.SMTPPassword,
		From:     cfg.MailFrom,
		Timeout:  cfg.SMTPTimeout,
		// One connection per email worker: reused, never waited for.
		PoolSize: cfg.EmailConcurrency,
	})
	if err != nil {
		return err
	}
	// With the Postgres sink the relay writes the records (below); its
	// analytics worker stays for the jobs inserted before, by an older
	// worker or while the sink was http, and records each of them once.
	var sink analytics.Sink = analytics.PostgresSink{Store: store}
	if cfg.AnalyticsSink == "http" {
		sink = analytics.NewHTTPSink(cfg.AnalyticsURL.String(), cfg.JobTimeout/2)
	}
	// Metrics: counted as things happen (job.Metrics), states and
	// backlogs from a cached snapshot (postgres.Gauges), pool statistics.
	registry := prometheus.NewRegistry()
	metrics := job.NewMetrics(registry)
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		postgres.PoolCollector(pool),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "intake_smtp_connections_opened_total",
			Help: "SMTP connections opened (through AUTH); next to intake_email_sends_total, how well they are reused.",
		}, func() float64 { return float64(sender.Opened()) }),
		postgres.NewGauges(store, postgres.GaugesOpts{
			Work: true,
			Kinds: []string{job.ConfirmationEmailArgs{}.Kind(), job.AnalyticsEventArgs{}.Kind(),
				job.AbandonedDeliveriesArgs{}.Kind()},
			Queues: []string{job.QueueEmail, job.QueueAnalytics, job.QueueMaintenance},
			Logger: logger,
		}),
	)

	retry := job.RetryFromConfig(cfg)
	self := workerIdentity()
	heartbeat := &job.Heartbeat{
		Store: store, Self: self, Metrics: metrics, Logger: logger,
		Interval: cfg.HeartbeatInterval, Lease: cfg.EmailLease, DeadAfter: cfg.WorkerDeadAfter,
	}
	riverClient, err := job.NewClient(pool, job.Deps{
		Store: store, Sender: sender, Sink: sink, Logger: logger,
		PublicURL: cfg.PublicURL, StatusTokens: cfg.StatusTokens, Employer: cfg.Employer,
		Metrics: metrics, Heartbeat: heartbeat,
	}, job.Settings{
		ClientID:             self.ID,
		EmailConcurrency:     cfg.EmailConcurrency,
		AnalyticsConcurrency: cfg.AnalyticsConcurrency,
		FetchCooldown:        cfg.FetchCooldown,
		FetchPollInterval:    cfg.FetchPollInterval,
		JobTimeout:           cfg.JobTimeout,
		RescueAfter:          cfg.RescueAfter,
		RecordTimeout:        cfg.RecordTimeout,
		Retry:                retry,
		OutboxRetention:      cfg.OutboxRetention,
		ReconcileInterval:    cfg.ReconcileInterval,
		ReconcileAfter:       cfg.ReconcileAfter,
		ReportTo:             cfg.ReportTo,
		ApplicationRetention: cfg.ApplicationRetention,
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	relay := &outbox.Relay{
		Store:        store,
		River:        riverClient,
		Logger:       logger,
		Batch:        cfg.RelayBatch,
		PollInterval: cfg.RelayPollInterval,
		MaxAttempts:  retry.MaxAttempts(),
		// The Postgres sink's records are written in the relay's rounds;
		// the http sink's come from analytics jobs.
		RecordAnalytics: cfg.AnalyticsSink == "postgres",
		Metrics:         metrics,
		Listen: func(ctx context.Context, wake func()) {
			postgres.Listen(ctx, cfg.DatabaseURL, postgres.OutboxChannel, logger, wake)
		},
	}

	// Ops listener.
	ready := func(ctx context.Context) error {
		if err := relay.Stalled(time.Now()); err != nil {
			return err
		}
		return migrator.Ready(ctx)
	}
	registry.MustRegister(ops.ReadyGauge(ready, 5*time.Second))
	ln, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		return fmt.Errorf("listen on INTAKE_OPS_ADDR: %w", err)
	}
	// River UI, behind the admin tokens (ops.Guard): viewers read,
	// admins act, every action audited.
	riverUI, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(riverClient, nil),
		Logger:    logger,
		Prefix:    "/riverui",
	})
	if err != nil {
		return fmt.Errorf("river ui: %w", err)
	}
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	if err := riverUI.Start(uiCtx); err != nil {
		return fmt.Errorf("start river ui: %w", err)
	}
	opsServer := &http.Server{
		Handler: ops.Handler(ready, func(ctx context.Context) (int64, error) {
			q, err := store.Quarantine(ctx)
			return q.Events, err
		}, promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}),
			ops.Guard(store.Authenticate, store.Audit, logger, riverUI)),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := opsServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("ops listener failed", "err", err)
		}
	}()
	logger.Info("ops listening", "addr", ln.Addr().String())

	// Work. The heartbeat starts first and stops last (after River), so
	// it renews the leases of the sends a graceful shutdown lets finish.
	heartbeatCtx, stopHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	var heartbeatDone sync.WaitGroup
	heartbeatDone.Go(func() { heartbeat.Run(heartbeatCtx) })
	if err := riverClient.Start(context.WithoutCancel(ctx)); err != nil {
		stopHeartbeat()
		heartbeatDone.Wait()
		return fmt.Errorf("start river: %w", err)
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { relay.Run(relayCtx) })
	logger.Info("working", "worker_id", self.ID, "retry_max_attempts", retry.MaxAttempts())

	<-ctx.Done()
	err = shutdown(logger, cfg.ShutdownTimeout, cfg.JobTimeout+cfg.RecordTimeout, stopRelay, &wg, riverClient, opsServer)
	// No send runs any more: say QUIT on the pooled SMTP connections.
	sender.Close()
	stopHeartbeat()
	heartbeatDone.Wait()
	goneCtx, cancelGone := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelGone()
	if err := store.WorkerGone(goneCtx, self.ID); err != nil {
		logger.Warn("could not remove this worker's heartbeat; intakectl status will show it until it ages out", "err", err)
	}
	return err
}

func workerIdentity() postgres.Worker {
	host, _ := os.Hostname()
	now := time.Now()
	return postgres.Worker{
		ID:        fmt.Sprintf("%s-%d-%d", host, os.Getpid(), now.Unix()),
		Hostname:  host,
		PID:       os.Getpid(),
		StartedAt: now,
	}
}

// shutdown stops in the order that loses nothing: the relay first (its
// round commits or rolls back whole), then River stops fetching and lets
// running jobs finish within the budget, then cancels what is left (those
// jobs are retried), and the ops listener goes last. Cancelling never cuts
// an email send (it ends at its own deadline) nor the record of its outcome,
// so after the budget the worker still waits up to lease (an email
// attempt's whole life) before it exits: exiting earlier would leave an
// accepted message unrecorded, and its retry would send it again.
func shutdown(logger *slog.Logger, budget, lease time.Duration, stopRelay func(), relayDone *sync.WaitGroup, riverClient *river.Client[pgx.Tx], opsServer *http.Server) error {
	logger.Info("shutting down", "budget", budget.String())
	stopRelay()
	relayDone.Wait()

	softCtx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	err := riverClient.Stop(softCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("jobs still running at the end of the shutdown budget; cancelling them (they will be retried)")
		hardCtx, cancel := context.WithTimeout(context.Background(), lease+time.Second)
		defer cancel()
		err = riverClient.StopAndCancel(hardCtx)
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Second)
	defer cancelClose()
	_ = opsServer.Shutdown(closeCtx)
	if err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	logger.Info("stopped")
	return nil
}

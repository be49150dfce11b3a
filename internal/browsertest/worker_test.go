package browsertest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/outbox"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// startWorker runs the worker's parts in this process, wired as
// cmd/intake-worker's run wires them (its run is in package main, so it
// cannot be imported): a River client working both queues, the outbox relay
// woken by LISTEN/NOTIFY, and a mail sender pointed at smtpSrv. Everything
// stops when the test ends. It returns the worker's logs.
func startWorker(t *testing.T, dbURL string, smtpSrv *testkit.SMTPServer) *testkit.Buffer {
	t.Helper()
	cfg := testkit.DefaultConfig(t)
	logs := &testkit.Buffer{}
	logger := logging.New(logs, slog.LevelDebug, "intake-worker")
	ctx := context.Background()

	pool, err := postgres.NewPool(ctx, dbURL, &postgres.PoolOpts{
		MaxConns:        int32(cfg.EmailConcurrency + cfg.AnalyticsConcurrency + 4),
		ApplicationName: "intake-worker",
	})
	require.NoError(t, err)
	store := postgres.NewStore(pool)
	sender, err := mail.NewSender(mail.SMTPConfig{
		Host:    smtpSrv.Host,
		Port:    smtpSrv.Port,
		TLS:     "none",
		From:    cfg.MailFrom,
		Timeout: 2 * time.Second,
	})
	require.NoError(t, err)
	retry := job.RetrySchedule{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond, For: time.Hour}
	riverClient, err := job.NewClient(pool, job.Deps{
		Store:  store,
		Sender: sender,
		Sink:   analytics.PostgresSink{Store: store},
		Logger: logger,
		// The API's, so the email's link opens on it (testkit.StartAPI
		// uses the same default configuration).
		PublicURL:    cfg.PublicURL,
		Employer:     cfg.Employer,
		StatusTokens: cfg.StatusTokens,
	}, job.Settings{
		EmailConcurrency:     cfg.EmailConcurrency,
		AnalyticsConcurrency: cfg.AnalyticsConcurrency,
		JobTimeout:           cfg.JobTimeout,
		RescueAfter:          cfg.RescueAfter,
		Retry:                retry,
	})
	require.NoError(t, err)
	relay := &outbox.Relay{
		Store:        store,
		River:        riverClient,
		Logger:       logger,
		Batch:        cfg.RelayBatch,
		PollInterval: 200 * time.Millisecond,
		MaxAttempts:  retry.MaxAttempts(),
		// As intake-worker runs it with the Postgres sink.
		RecordAnalytics: true,
		Listen: func(ctx context.Context, wake func()) {
			postgres.Listen(ctx, dbURL, postgres.OutboxChannel, logger, wake)
		},
	}

	require.NoError(t, riverClient.Start(ctx))
	relayCtx, stopRelay := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { relay.Run(relayCtx) })

	t.Cleanup(func() {
		// The worker's own shutdown order: relay, then River, then the pool.
		stopRelay()
		wg.Wait()
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := riverClient.Stop(stopCtx); err != nil {
			t.Errorf("stop River: %v", err)
		}
		pool.Close()
		if t.Failed() {
			t.Logf("worker logs:\n%s", logs)
		}
	})
	return logs
}

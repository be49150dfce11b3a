package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/httpapi"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/ops"
	"github.com/intake/intake/internal/postgres"
)

// run is the whole program: config, database, wiring, serving, shutdown.
// It returns when ctx is cancelled (SIGINT/SIGTERM) and in-flight requests
// have finished, or the shutdown budget is spent.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	// Config.
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := logging.New(stdout, cfg.LogLevel, "intake-api")
	logger.Info("starting", "config", cfg)

	// Database.
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, &postgres.PoolOpts{
		MaxConns:        cfg.DBMaxConns,
		LockTimeout:     cfg.IdempotencyWait,
		ApplicationName: "intake-api",
		// A submit transaction never waits on the API between statements;
		// a session that does has lost its client, and must not keep an
		// idempotency key's row locked.
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
	store := postgres.NewStore(pool).WithAcquireTimeout(cfg.DBAcquireTimeout)

	// Wiring.
	waker := postgres.NewWaker(pool, logger, 5*time.Millisecond)
	wakerCtx, stopWaker := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { waker.Run(wakerCtx) })
	defer func() { stopWaker(); wg.Wait() }()

	// Metrics: requests and submits, pool statistics, and the outbox
	// backlog, which the API reports too so that "outbox stuck" fires when
	// no worker is left to report it.
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		postgres.PoolCollector(pool),
		postgres.NewGauges(store, postgres.GaugesOpts{Logger: logger}),
		ops.ReadyGauge(migrator.Ready, 5*time.Second),
	)
	handler := httpapi.NewServer(httpapi.Deps{
		Config:  cfg,
		Store:   store,
		Waker:   waker,
		Ready:   migrator.Ready,
		Logger:  logger,
		Metrics: httpapi.NewMetrics(registry),
	})

	// Ops listener: health, readiness and metrics on a private address,
	// never on the public one.
	opsLn, err := net.Listen("tcp", cfg.APIOpsAddr)
	if err != nil {
		return fmt.Errorf("listen on INTAKE_API_OPS_ADDR: %w", err)
	}
	opsServer := &http.Server{
		Handler:           ops.Handler(migrator.Ready, nil, promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}), nil),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := opsServer.Serve(opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("ops listener failed", "err", err)
		}
	}()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = opsServer.Shutdown(closeCtx)
	}()
	logger.Info("ops listening", "addr", opsLn.Addr().String())

	// Server.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on INTAKE_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Shutdown: stop accepting, let in-flight requests finish (each is
	// bounded by INTAKE_REQUEST_TIMEOUT), give up at the budget.
	logger.Info("shutting down", "budget", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

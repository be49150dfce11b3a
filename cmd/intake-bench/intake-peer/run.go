package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/postgres"
)

// newPeer wires the peer over pool: an insert-only River client, a store
// for the posting's questions, the relay's retry schedule.
func newPeer(cfg config.Config, pool *pgxpool.Pool, logger *slog.Logger) (*peer, error) {
	// No queues and no workers: this client only inserts. Its FetchCooldown
	// is also River's least time between two insert notifications for a
	// queue; the worker's own client, the one its relay inserts with, uses
	// River's minimum, so every submit here wakes the worker's producers as
	// every relay round does there.
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown: time.Millisecond,
		Logger:        logger,
	})
	if err != nil {
		return nil, err
	}
	return &peer{
		cfg:         cfg,
		pool:        pool,
		store:       postgres.NewStore(pool),
		river:       riverClient,
		maxAttempts: job.RetryFromConfig(cfg).MaxAttempts(),
		now:         time.Now,
	}, nil
}

// routes is the peer's whole surface.
func (p *peer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/jobs/{slug}/applications", p.handleSubmit)
	return mux
}

// run is the whole peer: Intake's config, a pool set up as the API's, an
// insert-only River client, the server, and shutdown.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := logging.New(stdout, cfg.LogLevel, "intake-peer")

	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, &postgres.PoolOpts{
		MaxConns:                 cfg.DBMaxConns,
		LockTimeout:              cfg.IdempotencyWait,
		ApplicationName:          "intake-peer",
		IdleInTransactionTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer postgres.ClosePool(pool, 2*time.Second)

	p, err := newPeer(cfg, pool, logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on INTAKE_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           p.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

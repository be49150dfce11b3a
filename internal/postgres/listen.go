package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls notify for every notification on channel until ctx is done.
// It holds a dedicated connection (LISTEN cannot share a pool) and
// reconnects with backoff when it drops; after a reconnect it calls notify
// once, since notifications sent while it was away are lost.
func Listen(ctx context.Context, connString, channel string, logger *slog.Logger, notify func()) {
	backoff := 100 * time.Millisecond
	for {
		err := listenOnce(ctx, connString, channel, notify)
		if ctx.Err() != nil {
			return
		}
		logger.Warn("outbox listener disconnected; reconnecting", "err", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		notify()
	}
}

func listenOnce(ctx context.Context, connString, channel string, notify func()) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		notify()
	}
}

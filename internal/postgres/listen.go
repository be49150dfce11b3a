package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls notify for every notification on channel until ctx is done.
// It holds a dedicated connection (LISTEN cannot share a pool) and
// reconnects with backoff when it drops. Each time its LISTEN takes effect
// it calls notify once, since notifications sent before then (while it was
// away or still connecting) are lost.
func Listen(ctx context.Context, connString, channel string, logger *slog.Logger, notify func()) {
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for {
		listened, err := listenOnce(ctx, connString, channel, notify)
		if ctx.Err() != nil {
			return
		}
		if listened {
			// The connection worked until it dropped: this is a new outage.
			backoff = firstBackoff
		}
		logger.Warn("outbox listener disconnected; reconnecting", "err", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listenOnce listens on one connection until it fails; listened reports
// whether its LISTEN took effect.
func listenOnce(ctx context.Context, connString, channel string, notify func()) (listened bool, err error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, err
	}
	notify()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		notify()
	}
}

package postgres

import (
	"context"
	"fmt"
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

// A listener that has heard nothing for listenIdleCheck checks that its
// connection still answers, within listenTimeout: a connection that went
// silently dead (no reset: a pooler, load balancer or NAT that lost its
// state) would otherwise be waited on forever, and the relay would be left
// with its polling alone. listenTimeout also bounds connecting and LISTEN.
const (
	listenIdleCheck = 15 * time.Second
	listenTimeout   = 5 * time.Second
)

// listenOnce listens on one connection until it fails; listened reports
// whether its LISTEN took effect.
func listenOnce(ctx context.Context, connString, channel string, notify func()) (listened bool, err error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return false, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = listenTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	listenCtx, cancel := context.WithTimeout(ctx, listenTimeout)
	_, err = conn.Exec(listenCtx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	cancel()
	if err != nil {
		return false, err
	}
	notify()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenIdleCheck)
		_, err := conn.WaitForNotification(waitCtx)
		quiet := waitCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			notify()
			continue
		}
		if !quiet {
			return true, err
		}
		pingCtx, cancel := context.WithTimeout(ctx, listenTimeout)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return true, fmt.Errorf("listener connection silent for %s and not answering: %w", listenIdleCheck, err)
		}
	}
}

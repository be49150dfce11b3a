package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/application"
)

// PoolOpts tunes a connection pool.
type PoolOpts struct {
	// MaxConns caps the pool; zero keeps pgx's default.
	MaxConns int32
	// LockTimeout, when set, bounds every lock wait on the pool's
	// connections. The API sets it so a request waiting on another one that
	// holds the same idempotency key gives up in time (SPEC section 3).
	LockTimeout time.Duration
	// ApplicationName shows in pg_stat_activity.
	ApplicationName string
	// IdleInTransactionTimeout, when set, has the server end a session that
	// sits in a transaction waiting for its client this long. The worker
	// sets it: if a connection goes silently dead mid-transaction (no reset:
	// a pooler, load balancer or NAT that lost its state), the server would
	// otherwise keep the transaction open, and its row locks (events the
	// relay claimed, which SKIP LOCKED then passes over), until its TCP
	// keepalive gives up, hours later.
	IdleInTransactionTimeout time.Duration
}

// NewPool opens a pool. It does not connect yet, so it does not fail when
// the database is merely down: connections are made on demand, and
// readiness reports the outage.
func NewPool(ctx context.Context, url string, opts *PoolOpts) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if opts == nil {
		opts = &PoolOpts{}
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	params := cfg.ConnConfig.RuntimeParams
	if opts.LockTimeout > 0 {
		params["lock_timeout"] = strconv.FormatInt(opts.LockTimeout.Milliseconds(), 10)
	}
	if opts.ApplicationName != "" {
		params["application_name"] = opts.ApplicationName
	}
	if opts.IdleInTransactionTimeout > 0 {
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(opts.IdleInTransactionTimeout.Milliseconds(), 10)
	}
	// A connection attempt must never outlast a request; pgx's default is
	// to wait for the operating system.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// classify turns a database error into a domain error where one applies.
// Anything that means "the database is not there or not answering right now"
// becomes application.ErrUnavailable, which the API answers with 503 and
// Retry-After; the cause stays wrapped for the log.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return application.ErrNotFound
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", application.ErrUnavailable, err)
	}
	return err
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code[:2] == "08", // connection exception
			pgErr.Code[:2] == "53", // insufficient resources (too many connections, disk full)
			pgErr.Code[:2] == "57", // operator intervention: shutdown, statement timeout, cancel
			pgErr.Code == "55P03",  // lock_not_available: lock_timeout expired
			pgErr.Code == "40001",  // serialization_failure
			pgErr.Code == "40P01",  // deadlock_detected
			pgErr.Code == "25006":  // read_only_sql_transaction: a standby during failover
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.Is(err, pgx.ErrTxClosed)
}

// lockTimeout reports whether err is an expired lock_timeout.
func lockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// undoneByConcurrentCommit reports whether err is one of the two errors
// with which SubmissionInsert undoes itself when a concurrent request
// committed what it waited for: its key (unique violation) or an
// application from the same email, which leaves its key pointing at no
// application (foreign key violation).
func undoneByConcurrentCommit(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23503")
}

// ClosePool closes pool, waiting at most timeout. Closing a connection
// whose peer went silently away waits for pgx's own 15 s close deadline;
// at shutdown, when every transaction has already ended, that wait only
// delays the exit, so after timeout ClosePool gives up and the operating
// system closes the sockets as the process ends. It reports whether the
// pool closed in time.
func ClosePool(pool *pgxpool.Pool, timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		pool.Close()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

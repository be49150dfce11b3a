package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// Store runs Intake's queries. Its methods that change more than one row do
// it in one transaction, visible in the method.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
	// acquireTimeout, when set, bounds the wait for a pool connection at
	// the start of a transaction (WithAcquireTimeout).
	acquireTimeout time.Duration
	// questions holds each posting's questions by slug once read
	// (PostingQuestions). An entry never goes stale: questions are fixed
	// when a posting is created, and postings are never deleted. A pointer,
	// so WithAcquireTimeout's copy shares it.
	questions *sync.Map
	// starts and sents are the group commits of the email attempts'
	// starts and "sent" records (DeliveryAttemptStart, DeliverySent).
	// Pointers, so WithAcquireTimeout's copy shares them.
	starts *group[startRequest, startResult]
	sents  *group[sentRequest, bool]
}

// ErrBusy is returned when no pool connection came free within the
// store's acquire timeout: the process has more work than connections.
// Nothing was done; the API answers 503 overloaded.
var ErrBusy = errors.New("no database connection free")

// WithAcquireTimeout returns a store whose transactions wait at most d for
// a pool connection, then fail with ErrBusy instead of queueing behind
// every other request (the API's choice: answer soon, or say "later").
func (s *Store) WithAcquireTimeout(d time.Duration) *Store {
	c := *s
	c.acquireTimeout = d
	return &c
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	s := &Store{pool: pool, q: dbsqlc.New(pool), questions: &sync.Map{}}
	s.starts = &group[startRequest, startResult]{app: func(r startRequest) uuid.UUID { return r.id }, run: s.startMany}
	s.sents = &group[sentRequest, bool]{app: func(r sentRequest) uuid.UUID { return r.id }, run: s.sentMany}
	return s
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return classify(s.pool.Ping(ctx))
}

// withTx runs fn in a transaction: committed when fn returns nil, rolled back
// otherwise (and when the commit itself fails, nothing is kept).
func (s *Store) withTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	return classify(s.beginFunc(ctx, func(tx pgx.Tx) error {
		return fn(s.q.WithTx(tx))
	}))
}

// beginFunc is pgx.BeginFunc on a connection acquired within the store's
// acquire timeout, when it has one.
func (s *Store) beginFunc(ctx context.Context, fn func(pgx.Tx) error) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return pgx.BeginFunc(ctx, conn, fn)
}

// acquire takes a pool connection, waiting at most the store's acquire
// timeout when it has one: past it, ErrBusy.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if s.acquireTimeout <= 0 {
		return s.pool.Acquire(ctx)
	}
	acquireCtx, cancel := context.WithTimeout(ctx, s.acquireTimeout)
	conn, err := s.pool.Acquire(acquireCtx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(acquireCtx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w within %s", ErrBusy, s.acquireTimeout)
		}
		return nil, err
	}
	return conn, nil
}

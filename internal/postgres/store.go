package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// Store runs Intake's queries. Its methods that change more than one row do
// it in one transaction, visible in the method.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, q: dbsqlc.New(pool)}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return classify(s.pool.Ping(ctx))
}

// withTx runs fn in a transaction: committed when fn returns nil, rolled back
// otherwise (and when the commit itself fails, nothing is kept).
func (s *Store) withTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	return classify(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return fn(s.q.WithTx(tx))
	}))
}

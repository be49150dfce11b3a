package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/postgres"
)

// With every pool connection taken, a submit through a store with an
// acquire timeout fails with ErrBusy soon after the timeout and stores
// nothing; once a connection is free, the same submission goes through.
func TestSubmitAcquireTimeout(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	small, err := postgres.NewPool(t.Context(), b.dbURL, &postgres.PoolOpts{MaxConns: 1})
	require.NoError(t, err)
	t.Cleanup(small.Close)
	store := postgres.NewStore(small).WithAcquireTimeout(50 * time.Millisecond)

	held, err := small.Acquire(t.Context())
	require.NoError(t, err)
	release := sync.OnceFunc(held.Release)
	defer release() // the pool's Close waits for it
	sub := b.submission(t, submissionOpts{})
	// Without the acquire timeout, only this deadline would end the wait.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = store.Submit(ctx, sub)
	took := time.Since(start)
	require.ErrorIs(t, err, postgres.ErrBusy)
	require.GreaterOrEqual(t, took, 50*time.Millisecond)
	require.Less(t, took, 5*time.Second, "the wait is bounded by the timeout, not the request")
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT count(*) FROM idempotency_keys").Scan(&n))
	require.Zero(t, n, "a submit that got no connection stores nothing")

	release()
	res, err := store.Submit(t.Context(), sub)
	require.NoError(t, err)
	require.False(t, res.Replayed)
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT count(*) FROM applications WHERE id = $1", sub.ID).Scan(&n))
	require.Equal(t, 1, n)
}

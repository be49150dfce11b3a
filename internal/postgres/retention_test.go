package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// Retention deletes only dispatched events older than the cutoff, in as
// many batches as it takes; undispatched and quarantined ones stay whatever
// their age, and the applications stay too.
func TestDeleteDispatchedEventsKeepsWorkStillToDo(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	testkit.Seed(t, b.pool, b.slug, 2600)
	now := time.Now()
	// 2300 old dispatched, 100 recent dispatched, 100 old undispatched,
	// 100 old quarantined.
	_, err := b.pool.Exec(ctx, `
		WITH numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM outbox_events)
		UPDATE outbox_events e SET
			created_at = $1::timestamptz - interval '9 days',
			dispatched_at = CASE WHEN n <= 2300 THEN $1::timestamptz - interval '8 days'
			                     WHEN n <= 2400 THEN $1::timestamptz - interval '1 day' END,
			quarantined_at = CASE WHEN n > 2500 THEN $1::timestamptz - interval '8 days' END,
			quarantine_error = CASE WHEN n > 2500 THEN 'payload: test' END
		FROM numbered WHERE numbered.id = e.id`, now)
	require.NoError(t, err)

	n, err := b.store.DeleteDispatchedEvents(ctx, now.Add(-7*24*time.Hour), 700)
	require.NoError(t, err)
	require.EqualValues(t, 2300, n, "four batches of at most 700")
	require.Equal(t, [3]int{2600, 300, 0}, counts(t, b.pool))
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM outbox_events WHERE dispatched_at < $1`, now.Add(-7*24*time.Hour)))

	n, err = b.store.DeleteDispatchedEvents(ctx, now.Add(-7*24*time.Hour), 700)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to delete")
}

// A row a transaction holds (the relay's claim, a submit) is skipped, not
// waited for: retention never queues behind the request path.
func TestDeleteDispatchedEventsSkipsLockedRows(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	testkit.Seed(t, b.pool, b.slug, 10)
	_, err := b.pool.Exec(ctx, `UPDATE outbox_events SET dispatched_at = now() - interval '8 days'`)
	require.NoError(t, err)

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `SELECT id FROM outbox_events ORDER BY id LIMIT 1 FOR UPDATE`)
	require.NoError(t, err)

	deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := b.store.DeleteDispatchedEvents(deadline, time.Now().Add(-7*24*time.Hour), 1000)
	require.NoError(t, err, "a locked row must not block retention")
	require.EqualValues(t, 9, n)
}

// Expired keys go, live ones stay; the cutoff is the caller's clock.
func TestDeleteExpiredIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	for _, ttl := range []time.Duration{24 * time.Hour, 48 * time.Hour, 72 * time.Hour} {
		_, err := b.store.Submit(ctx, b.submission(t, submissionOpts{Email: uuid.NewString() + "@example.com", KeyTTL: ttl}))
		require.NoError(t, err)
	}
	n, err := b.store.DeleteExpiredIdempotencyKeys(ctx, time.Now(), 1000)
	require.NoError(t, err)
	require.Zero(t, n, "no key has expired yet")

	n, err = b.store.DeleteExpiredIdempotencyKeys(ctx, time.Now().Add(60*time.Hour), 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "two batches of one, then a short one")
	require.Equal(t, [3]int{3, 3, 1}, counts(t, b.pool))
}

// Invariant 1 where old events are deleted: an application always commits
// with its event, and the database still refuses one without it after
// retention deleted old events. The skeleton whose event was deleted stands
// alone, and the foreign key from events to applications still holds.
func TestInvariantOneEnforcedAfterRetention(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	old := b.submission(t, submissionOpts{Email: "old@example.com"})
	_, err := b.store.Submit(ctx, old)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE outbox_events SET dispatched_at = now() - interval '8 days'`)
	require.NoError(t, err)
	n, err := b.store.DeleteDispatchedEvents(ctx, time.Now().Add(-7*24*time.Hour), 1000)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM applications WHERE id = $1`, old.ID), "the application outlives its event")

	// A new submit still commits with its event.
	_, err = b.store.Submit(ctx, b.submission(t, submissionOpts{Email: "new@example.com"}))
	require.NoError(t, err)
	require.Equal(t, [3]int{2, 1, 2}, counts(t, b.pool))

	// An application without its event is refused at commit.
	var postingID int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM postings WHERE slug = $1`, b.slug).Scan(&postingID))
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		return insertRow(ctx, tx, "applications", newCompleteSubmission(postingID).application)
	})
	requirePgError(t, err, "23000", "")

	// An event still needs its application.
	_, err = b.pool.Exec(ctx, `INSERT INTO outbox_events (id, kind, aggregate_id, payload) VALUES ($1, 'application.submitted', $2, '{}')`,
		uuid.New(), uuid.New())
	requirePgError(t, err, "23503", "outbox_events_aggregate_id_fkey")
	require.Equal(t, [3]int{2, 1, 2}, counts(t, b.pool))
}

func countRows(t *testing.T, b *submitBundle, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

// Retention under load: submits run while retention deletes 200,000 old
// dispatched events, and their p99 is compared with the same submits
// without it. A batch locks only its own rows for one statement, so a
// submit never waits for retention.
func TestRetentionDoesNotBlockSubmits(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 200,000 events")
	}
	t.Parallel()
	const events, submits, concurrency = 200_000, 2000, 8
	b := setupSubmit(t)
	ctx := t.Context()
	testkit.Seed(t, b.pool, b.slug, events)
	_, err := b.pool.Exec(ctx, `UPDATE outbox_events SET dispatched_at = now() - interval '8 days'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `VACUUM ANALYZE outbox_events`)
	require.NoError(t, err)

	baseline := submitP99(t, b, submits, concurrency)

	done := make(chan struct{})
	var deleted int64
	var took time.Duration
	go func() {
		defer close(done)
		start := time.Now()
		deleted, err = b.store.DeleteDispatchedEvents(context.Background(), time.Now().Add(-7*24*time.Hour), 1000)
		took = time.Since(start)
	}()
	during := submitP99(t, b, submits, concurrency)
	<-done
	require.NoError(t, err)
	require.EqualValues(t, events, deleted)
	t.Logf("retention of %d dispatched events took %s; submit p99 (%d submits, %d at once): %s without retention, %s while it ran",
		events, took.Round(time.Millisecond), submits, concurrency, baseline.Round(100*time.Microsecond), during.Round(100*time.Microsecond))
	require.Less(t, during, baseline*5+50*time.Millisecond, "retention must not hold submits up")
}

// submitP99 runs n submits, c at a time, and returns their p99 latency.
func submitP99(t *testing.T, b *submitBundle, n, c int) time.Duration {
	t.Helper()
	latencies := make([]time.Duration, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sub := b.submission(t, submissionOpts{Email: uuid.NewString() + "@example.com"})
				start := time.Now()
				_, err := b.store.Submit(context.Background(), sub)
				latencies[i] = time.Since(start)
				if err != nil {
					t.Errorf("submit: %v", err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	slices.Sort(latencies)
	return latencies[n*99/100]
}

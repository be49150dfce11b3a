package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// These tests hold the first statement of a group on a row lock, queue
// the requests that then arrive, and release it: the queued ones must go
// together in the next statement, each answered as it would be alone.

// groupBundle is n applications with their ledger rows queued, and a
// store whose statements land in log.
type groupBundle struct {
	pool  *pgxpool.Pool
	store *postgres.Store
	log   *statementLog
	apps  []string
}

func setupGroup(t *testing.T, n int) *groupBundle {
	t.Helper()
	pool, dbURL := testkit.NewPool(t)
	plain := postgres.NewStore(pool)
	_, err := plain.CreatePosting(t.Context(), application.NewPosting{Slug: "engineer", Title: "Engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "engineer", n)
	_, err = pool.Exec(t.Context(), `INSERT INTO deliveries (application_id) SELECT id FROM applications`)
	require.NoError(t, err)
	rows, err := pool.Query(t.Context(), `SELECT id::text FROM applications ORDER BY id`)
	require.NoError(t, err)
	apps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	sb := &submitBundle{dbURL: dbURL}
	store, log := sb.tracedStore(t, 0)
	return &groupBundle{pool: pool, store: store, log: log, apps: apps}
}

// holdRow locks app's ledger row until the returned release is called, so
// the statement that runs for app waits on it.
func (b *groupBundle) holdRow(t *testing.T, app string) (release func()) {
	t.Helper()
	tx, err := b.pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), `SELECT 1 FROM deliveries WHERE application_id = $1 FOR UPDATE`, app)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return func() { require.NoError(t, tx.Commit(t.Context())) }
}

// waitFor waits until waiting says queued requests wait behind a running
// statement.
func waitFor(t *testing.T, waiting func() (int, bool), queued int) {
	t.Helper()
	require.Eventually(t, func() bool {
		n, busy := waiting()
		return busy && n == queued
	}, 10*time.Second, time.Millisecond)
}

type started struct {
	attempt int
	err     error
}

// startAll starts an attempt for each of apps at once, each on its own
// goroutine, once the group's running statement holds first; it returns
// the answers in apps' order once all have come.
func (b *groupBundle) startAll(t *testing.T, first string, apps []string) []started {
	t.Helper()
	release := b.holdRow(t, first)
	firstDone := make(chan error, 1)
	go func() {
		_, _, err := b.store.DeliveryAttemptStart(context.Background(), first, time.Minute)
		firstDone <- err
	}()
	waitFor(t, b.store.StartsWaiting, 0)
	out := make([]started, len(apps))
	done := make(chan int, len(apps))
	for i, app := range apps {
		go func() {
			_, attempt, err := b.store.DeliveryAttemptStart(context.Background(), app, time.Minute)
			out[i] = started{attempt, err}
			done <- i
		}()
	}
	waitFor(t, b.store.StartsWaiting, len(apps))
	release()
	require.NoError(t, <-firstDone)
	for range apps {
		<-done
	}
	return out
}

func count(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}

// N concurrent attempts take their leases in fewer than N statements (each
// its own commit), and each gets its own attempt number.
func TestConcurrentStartsShareAStatement(t *testing.T) {
	t.Parallel()
	b := setupGroup(t, 8)
	// Each delivery has had a different number of attempts before.
	for i, app := range b.apps {
		_, err := b.pool.Exec(t.Context(), `UPDATE deliveries SET state = 'retrying', attempts = $2 WHERE application_id = $1`, app, i)
		require.NoError(t, err)
	}
	got := b.startAll(t, b.apps[0], b.apps[1:])
	for i, s := range got {
		require.NoError(t, s.err)
		require.Equal(t, i+2, s.attempt, "application %d", i+1)
	}
	names := b.log.take()
	require.Equal(t, 2, count(names, "DeliveryAttemptStartMany"), "%v", names)
	require.Less(t, len(names), len(b.apps), "%v", names)
}

// In one group: an attempt whose lease is held, one already sent, one
// failed, one erased, one for an application that does not exist, two for
// the same application, and an ordinary one. Each answers as it would
// alone, and the second of the same application goes in the next
// statement instead of failing the group's.
func TestGroupedStartsAnswerAsAlone(t *testing.T) {
	t.Parallel()
	b := setupGroup(t, 7)
	ctx := t.Context()
	blocker, held, sent, failed, erased, twice, plain := b.apps[0], b.apps[1], b.apps[2], b.apps[3], b.apps[4], b.apps[5], b.apps[6]
	_, _, err := b.store.DeliveryAttemptStart(ctx, held, time.Minute)
	require.NoError(t, err)
	_, a, err := b.store.DeliveryAttemptStart(ctx, sent, time.Minute)
	require.NoError(t, err)
	require.NoError(t, b.store.DeliverySent(ctx, sent, a))
	_, a, err = b.store.DeliveryAttemptStart(ctx, failed, time.Minute)
	require.NoError(t, err)
	require.NoError(t, b.store.DeliveryUnsent(ctx, failed, a, application.EmailFailed, application.FailurePermanent, 550))
	require.NoError(t, b.store.EraseApplication(ctx, access.Caller{Actor: access.CLIActor("test")}, erased, "test"))
	gone := uuid.NewString()
	b.log.take()

	got := b.startAll(t, blocker, []string{held, sent, failed, erased, gone, twice, twice, plain})
	var lease *postgres.LeaseHeldError
	require.ErrorAs(t, got[0].err, &lease, "held")
	require.ErrorIs(t, got[1].err, postgres.ErrAlreadySent)
	require.ErrorIs(t, got[2].err, postgres.ErrDeliveryFailed)
	require.ErrorIs(t, got[3].err, postgres.ErrDeliveryCancelled)
	require.ErrorIs(t, got[4].err, application.ErrNotFound)
	twiceAnswers := []string{fmt.Sprint(got[5].attempt, got[5].err == nil), fmt.Sprint(got[6].attempt, got[6].err == nil)}
	slices.Sort(twiceAnswers)
	require.Equal(t, []string{"0 false", "1 true"}, twiceAnswers, "one of the two takes the lease")
	require.ErrorAs(t, errors.Join(got[5].err, got[6].err), &lease)
	require.NoError(t, got[7].err)
	require.Equal(t, 1, got[7].attempt)

	names := b.log.take()
	require.Equal(t, 3, count(names, "DeliveryAttemptStartMany"), "the blocker's, the group's, the second of the same application's: %v", names)
	require.Zero(t, count(names, "DeliveryAttemptStart"), "no start fell back to a statement alone: %v", names)
}

// A group's "sent" statement where one record no longer owns its delivery
// (a newer attempt took it over) records the others and answers
// ErrLeaseLost to that one alone.
func TestGroupedSentRecordsTheOthers(t *testing.T) {
	t.Parallel()
	b := setupGroup(t, 4)
	ctx := t.Context()
	attempts := make([]int, len(b.apps))
	for i, app := range b.apps {
		_, a, err := b.store.DeliveryAttemptStart(ctx, app, time.Minute)
		require.NoError(t, err)
		attempts[i] = a
	}
	stale := b.apps[3]
	_, err := b.pool.Exec(ctx, `UPDATE deliveries SET lease_expires_at = now() WHERE application_id = $1`, stale)
	require.NoError(t, err)
	_, newer, err := b.store.DeliveryAttemptStart(ctx, stale, time.Minute)
	require.NoError(t, err)
	b.log.take()

	release := b.holdRow(t, b.apps[0])
	firstDone := make(chan error, 1)
	go func() { firstDone <- b.store.DeliverySent(context.Background(), b.apps[0], attempts[0]) }()
	waitFor(t, b.store.SentsWaiting, 0)
	errs := make([]error, len(b.apps))
	done := make(chan struct{}, len(b.apps))
	for i := 1; i < len(b.apps); i++ {
		go func() {
			errs[i] = b.store.DeliverySent(context.Background(), b.apps[i], attempts[i])
			done <- struct{}{}
		}()
	}
	waitFor(t, b.store.SentsWaiting, len(b.apps)-1)
	release()
	require.NoError(t, <-firstDone)
	for i := 1; i < len(b.apps); i++ {
		<-done
	}

	require.NoError(t, errs[1])
	require.NoError(t, errs[2])
	require.ErrorIs(t, errs[3], postgres.ErrLeaseLost)
	for _, app := range b.apps[:3] {
		var state string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state FROM deliveries WHERE application_id = $1`, app).Scan(&state))
		require.Equal(t, "sent", state)
	}
	var state string
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT state, attempts FROM deliveries WHERE application_id = $1`, stale).Scan(&state, &n))
	require.Equal(t, "sending", state)
	require.Equal(t, newer, n)
	names := b.log.take()
	require.Equal(t, 2, count(names, "DeliveryMarkSentMany"), "the blocker's and the group's: %v", names)
	require.Zero(t, count(names, "DeliveryMarkSent"), "no record fell back to a statement alone: %v", names)
}

// A group's statement is not cancelled with its callers (a worker that
// shuts down cancels its jobs' contexts): the "sent" already in flight is
// written, and so are the records queued behind it.
func TestGroupedSentOutlivesItsCallersCancellation(t *testing.T) {
	t.Parallel()
	b := setupGroup(t, 2)
	attempts := make([]int, len(b.apps))
	for i, app := range b.apps {
		_, a, err := b.store.DeliveryAttemptStart(t.Context(), app, time.Minute)
		require.NoError(t, err)
		attempts[i] = a
	}

	release := b.holdRow(t, b.apps[0])
	ctx, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() { firstDone <- b.store.DeliverySent(ctx, b.apps[0], attempts[0]) }()
	waitFor(t, b.store.SentsWaiting, 0)
	secondDone := make(chan error, 1)
	go func() { secondDone <- b.store.DeliverySent(context.Background(), b.apps[1], attempts[1]) }()
	waitFor(t, b.store.SentsWaiting, 1)
	cancel()
	release()
	require.NoError(t, <-firstDone)
	require.NoError(t, <-secondDone)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM deliveries WHERE state = 'sent'`))
}

func (b *groupBundle) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), query).Scan(&n))
	return n
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/job"
)

// jobStates returns each river_job row's state ("available now" when it is
// due), by the note the test put in its args.
func jobStates(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT args->>'note', state::text || CASE WHEN state = 'available' AND scheduled_at <= now() THEN ' now' ELSE '' END
		FROM river_job`)
	require.NoError(t, err)
	states := map[string]string{}
	for rows.Next() {
		var note, state string
		require.NoError(t, rows.Scan(&note, &state))
		states[note] = state
	}
	require.NoError(t, rows.Err())
	return states
}

func TestAnalyticsRetry(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	// No job at all, as with the Postgres sink: it says there is nothing
	// to retry, and why.
	require.Equal(t, "retryable: made 0 analytics jobs available\n"+nothingToRetry+"\n", c.ok("analytics", "retry"))
	insert := func(note, kind, queue, state string, attempt, maxAttempts int) {
		t.Helper()
		mustExec(t, pool, `INSERT INTO river_job (kind, args, queue, state, priority, attempt, max_attempts, scheduled_at, attempted_at, finalized_at)
			VALUES ($1, jsonb_build_object('note', $3::text), $2, $4::river_job_state, 1, $5, $6, now() + interval '20 minutes', now() - interval '1 minute',
			        CASE WHEN $4 IN ('cancelled', 'discarded', 'completed') THEN now() END)`,
			kind, queue, note, state, attempt, maxAttempts)
	}
	insert("retryable 1", "analytics_event", "analytics", "retryable", 3, 152)
	insert("retryable 2", "analytics_event", "analytics", "retryable", 7, 152)
	insert("discarded", "analytics_event", "analytics", "discarded", 152, 152)
	insert("cancelled", "analytics_event", "analytics", "cancelled", 1, 152)
	insert("completed", "analytics_event", "analytics", "completed", 1, 152)
	insert("running", "analytics_event", "analytics", "running", 2, 152)
	insert("email retryable", "confirmation_email", "email", "retryable", 2, 152)
	insert("email discarded", "confirmation_email", "email", "discarded", 152, 152)
	// A dead worker's row, finalized by a heartbeat rescue that ran the
	// job again as a new row: replaying it would run the job twice.
	insert("rescued away", "analytics_event", "analytics", "discarded", 1, 152)
	mustExec(t, pool, `UPDATE river_job SET metadata = '{"rescued_as": 12345}' WHERE args->>'note' = 'rescued away'`)

	// Without flags: the retrying analytics jobs run now, nothing else moves.
	require.Equal(t, "retryable: made 2 analytics jobs available\n", c.ok("analytics", "retry"))
	require.Equal(t, map[string]string{
		"retryable 1": "available now", "retryable 2": "available now",
		"discarded": "discarded", "cancelled": "cancelled", "completed": "completed", "running": "running",
		"email retryable": "retryable", "email discarded": "discarded", "rescued away": "discarded",
	}, jobStates(t, pool))

	// --discarded: the given-up and cancelled ones too; a completed or
	// running analytics job, a rescued one's old row and every email job
	// stay as they are.
	require.Equal(t, "retryable: made 0 analytics jobs available\n"+
		"discarded: made 1 analytics jobs available\n"+
		"cancelled: made 1 analytics jobs available\n", c.ok("analytics", "retry", "--discarded"))
	require.Equal(t, map[string]string{
		"retryable 1": "available now", "retryable 2": "available now",
		"discarded": "available now", "cancelled": "available now", "completed": "completed", "running": "running",
		"email retryable": "retryable", "email discarded": "discarded", "rescued away": "discarded",
	}, jobStates(t, pool))
	// A job that had used up its attempts gets one more (River's rule).
	var maxAttempts int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT max_attempts FROM river_job WHERE args->>'note' = 'discarded'`).Scan(&maxAttempts))
	require.Equal(t, 153, maxAttempts)
	require.Equal(t, 4, auditedCount(t, pool, "analytics.retry"), "one audit row per job made available")

	require.Equal(t, "retryable: made 0 analytics jobs available\n"+
		"discarded: made 0 analytics jobs available\n"+
		"cancelled: made 0 analytics jobs available\n"+nothingToRetry+"\n", c.ok("analytics", "retry", "--discarded"), "nothing left to replay")

	var usage usageError
	for _, args := range [][]string{{"analytics"}, {"analytics", "replay"}, {"analytics", "retry", "--all"}, {"analytics", "retry", "42"}} {
		_, _, err := c.run(args...)
		require.True(t, errors.As(err, &usage), "%v: %v", args, err)
	}
}

// The operator's path end to end, with a real worker: the sink answers 401,
// analytics jobs retry (an hour apart here) instead of being lost, status
// names the cause, and after the fix `analytics retry` records them at once;
// `--discarded` replays a job the old rule had cancelled.
func TestAnalyticsRetryAfterSinkFixed(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)

	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	recorded := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		recorded[r.Header.Get("Idempotency-Key")] = true
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)

	retry := job.RetrySchedule{Base: time.Hour, Max: time.Hour, For: 2 * time.Hour}
	client, err := job.NewClient(pool, job.Deps{Sink: analytics.NewHTTPSink(srv.URL, 5*time.Second), Logger: slog.New(slog.DiscardHandler)}, job.Settings{
		EmailConcurrency: 1, AnalyticsConcurrency: 4,
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
		JobTimeout: 10 * time.Second, RescueAfter: time.Minute, Retry: retry,
	})
	require.NoError(t, err)
	events, cancelSubscription := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	t.Cleanup(cancelSubscription)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	waitStates := func(n int, state rivertype.JobState) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for seen := 0; seen < n; {
			select {
			case ev := <-events:
				// The client also runs the leader's periodic jobs, which
				// have no store here: only analytics jobs count.
				if ev.Job.Kind != (job.AnalyticsEventArgs{}).Kind() {
					continue
				}
				require.Equal(t, state, ev.Job.State, "job %d", ev.Job.ID)
				seen++
			case <-timeout:
				t.Fatalf("%d of %d jobs %s after 15s", seen, n, state)
			}
		}
	}

	args := func() job.AnalyticsEventArgs {
		return job.AnalyticsEventArgs{EventID: uuid.NewString(), EventKind: "application.submitted",
			ApplicationID: uuid.NewString(), PostingSlug: "go-engineer", OccurredAt: time.Now()}
	}
	var ids []string
	var params []river.InsertManyParams
	for range 3 {
		a := args()
		ids = append(ids, a.EventID)
		params = append(params, river.InsertManyParams{Args: a, InsertOpts: &river.InsertOpts{MaxAttempts: retry.MaxAttempts()}})
	}
	_, err = client.InsertMany(t.Context(), params)
	require.NoError(t, err)
	waitStates(3, rivertype.JobStateRetryable)

	s, err := statusOf(t, c)
	require.Error(t, err)
	require.Len(t, s.Stuck, 1)
	require.Contains(t, s.Stuck[0], "analytics: 3 jobs retrying, last error: analytics endpoint answered 401")

	// A job the old rule cancelled on a 401, before this worker ran.
	cancelled := args()
	err = pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		res, err := client.InsertTx(t.Context(), tx, cancelled, nil)
		if err != nil {
			return err
		}
		_, err = tx.Exec(t.Context(), `UPDATE river_job SET state = 'cancelled', finalized_at = now(), attempt = 1 WHERE id = $1`, res.Job.ID)
		return err
	})
	require.NoError(t, err)

	broken.Store(false)
	require.Equal(t, "retryable: made 3 analytics jobs available\n", c.ok("analytics", "retry"))
	waitStates(3, rivertype.JobStateCompleted)
	require.Contains(t, c.ok("analytics", "retry", "--discarded"), "cancelled: made 1 analytics jobs available")
	waitStates(1, rivertype.JobStateCompleted)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true, cancelled.EventID: true}, recorded)
	s, err = statusOf(t, c)
	require.NoError(t, err, "%v", s.Stuck)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

type statusJSON struct {
	OK     bool     `json:"ok"`
	Stuck  []string `json:"stuck"`
	Outbox struct {
		Undispatched int64 `json:"undispatched"`
		Quarantined  int64 `json:"quarantined"`
	} `json:"outbox"`
	Workers   []postgres.Worker        `json:"workers"`
	Jobs      []postgres.JobCount      `json:"jobs"`
	Deliver   []postgres.DeliveryCount `json:"deliveries"`
	Analytics struct {
		Retrying  int64  `json:"retrying"`
		LastError string `json:"last_error"`
	} `json:"analytics"`
	Reconciler postgres.ReconcilerFinds `json:"reconciler"`
}

func statusOf(t *testing.T, c *ctl, args ...string) (statusJSON, error) {
	t.Helper()
	out, _, err := c.run(append([]string{"status", "--json"}, args...)...)
	var s statusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &s), "output: %s", out)
	return s, err
}

func statusSetup(t *testing.T) (*ctl, *pgxpool.Pool, *postgres.Store) {
	t.Helper()
	pool, dbURL := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	_, err := store.CreatePosting(context.Background(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	return newCtl(t, dbURL), pool, store
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func TestStatusOKWhenNothingWaits(t *testing.T) {
	t.Parallel()
	c, _, _ := statusSetup(t)

	s, err := statusOf(t, c)

	require.NoError(t, err)
	require.True(t, s.OK)
	require.Empty(t, s.Stuck)
	require.Contains(t, c.ok("status"), "STATUS  OK")
}

func TestStatusStuckOutboxWithoutWorkers(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	testkit.Seed(t, pool, "go-engineer", 3)
	mustExec(t, pool, `UPDATE outbox_events SET created_at = now() - interval '5 minutes'`)

	s, err := statusOf(t, c)

	var stuck stuckError
	require.ErrorAs(t, err, &stuck)
	require.False(t, s.OK)
	require.EqualValues(t, 3, s.Outbox.Undispatched)
	require.Len(t, s.Stuck, 2)
	require.Contains(t, s.Stuck[0], "no worker reported")
	require.Contains(t, s.Stuck[1], "outbox: 3 events undispatched, the oldest for 5m")
	require.Contains(t, stuck.reason, "(and 1 more)")

	// A worker that reports recently removes the first reason, and a larger
	// threshold the second.
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)
	s, err = statusOf(t, c, "--stuck-after", "10m")
	require.NoError(t, err)
	require.True(t, s.OK)
	require.Len(t, s.Workers, 1)
	require.Equal(t, 42, s.Workers[0].PID)
}

func TestStatusStuckJobs(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)
	mustExec(t, pool, `INSERT INTO river_job (kind, args, max_attempts, queue, state, priority, scheduled_at, attempted_at, attempt)
		VALUES ('confirmation_email', '{}', 5, 'email', 'available', 1, now() - interval '3 minutes', NULL, 0),
		       ('analytics_event', '{}', 5, 'analytics', 'running', 1, now() - interval '4 minutes', now() - interval '4 minutes', 1),
		       ('analytics_event', '{}', 5, 'analytics', 'retryable', 1, now() + interval '1 minute', now() - interval '1 minute', 2)`)

	s, err := statusOf(t, c)

	require.Error(t, err)
	require.Len(t, s.Stuck, 2, "%v", s.Stuck)
	require.Contains(t, s.Stuck[0], "jobs: a analytics_event job running for 4m")
	require.Contains(t, s.Stuck[1], "1 confirmation_email jobs waiting to run, the oldest for 3m")
	states := map[string]int64{}
	for _, j := range s.Jobs {
		states[j.Kind+"/"+j.State] = j.Jobs
	}
	require.Equal(t, map[string]int64{"analytics_event/retryable": 1, "analytics_event/running": 1, "confirmation_email/available": 1}, states)
	text, _, _ := c.run("status")
	require.Contains(t, text, "confirmation_email  available  1     3m0s")
}

func TestDeliveriesFailedAckAndRetry(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)
	testkit.Seed(t, pool, "go-engineer", 3)
	mustExec(t, pool, `UPDATE outbox_events SET dispatched_at = now()`)
	mustExec(t, pool, `INSERT INTO deliveries (application_id, state, attempts, last_error_class, last_smtp_code, last_attempt_at, sent_at)
		SELECT id, 'failed', 1, 'permanent', 550, now(), NULL FROM applications ORDER BY id LIMIT 2`)
	mustExec(t, pool, `INSERT INTO deliveries (application_id, state, attempts, sent_at)
		SELECT id, 'sent', 1, now() FROM applications WHERE id NOT IN (SELECT application_id FROM deliveries)`)

	s, err := statusOf(t, c)
	require.Error(t, err)
	require.Equal(t, []string{"deliveries: 2 confirmation emails failed and not yet looked at (intakectl deliveries list, then retry or ack)"}, s.Stuck)

	var failed []postgres.FailedDelivery
	require.NoError(t, json.Unmarshal([]byte(c.ok("deliveries", "list", "--json")), &failed))
	require.Len(t, failed, 2)
	require.Equal(t, 550, failed[0].SMTPCode)

	// ack one: one left to look at.
	require.Contains(t, c.ok("deliveries", "ack", failed[0].ApplicationID), "acknowledged 1")
	s, _ = statusOf(t, c)
	require.Equal(t, []string{"deliveries: 1 confirmation emails failed and not yet looked at (intakectl deliveries list, then retry or ack)"}, s.Stuck)

	// retry --all: both failed ones are queued again with a new email job;
	// the sent one is untouched.
	require.Contains(t, c.ok("deliveries", "retry", "--all"), "queued 2 failed deliveries again")
	var queued, sent, jobs int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'sent') FROM deliveries`).Scan(&queued, &sent))
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND args->>'application_id' = ANY($1)`,
		[]string{failed[0].ApplicationID, failed[1].ApplicationID}).Scan(&jobs))
	require.Equal(t, 2, queued)
	require.Equal(t, 1, sent)
	require.Equal(t, 2, jobs)
	s, err = statusOf(t, c)
	require.NoError(t, err, "%v", s.Stuck)

	// Retrying again finds nothing failed: idempotent.
	require.Contains(t, c.ok("deliveries", "retry", "--all"), "queued 0 failed deliveries again")
	require.Equal(t, 1, auditedCount(t, pool, "deliveries.ack"))
	require.Equal(t, 2, auditedCount(t, pool, "deliveries.retry"), "one row per delivery queued again")

	_, _, err = c.run("deliveries", "retry")
	var usage usageError
	require.True(t, errors.As(err, &usage), "a bare retry must name its targets")
	_, _, err = c.run("deliveries", "retry", "not-a-uuid")
	require.ErrorContains(t, err, `"not-a-uuid" is not an application id`)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	// No DATABASE_URL that works: health must not need one.
	c := newCtl(t, "postgres://nobody@127.0.0.1:1/none")

	_, _, err := c.run("health", srv.URL+"/ok")
	require.NoError(t, err)
	for _, path := range []string{"/down", "/redirect"} {
		_, _, err := c.run("health", srv.URL+path)
		require.Error(t, err, path)
	}
	_, _, err = c.run("health", "--timeout", "50ms", srv.URL+"/slow")
	require.Error(t, err)
	_, _, err = c.run("health", "ftp://x")
	var usage usageError
	require.True(t, errors.As(err, &usage))
	require.True(t, strings.Contains(err.Error(), "not an http or https URL"))
}

// insertAnalyticsJob stores an analytics job in state whose last attempt
// failed with lastError, attempted ago and next scheduled in.
func insertAnalyticsJob(t *testing.T, pool *pgxpool.Pool, state, lastError string, ago, in time.Duration) {
	t.Helper()
	mustExec(t, pool, `INSERT INTO river_job (kind, args, max_attempts, queue, state, priority, scheduled_at, attempted_at, attempt, errors, finalized_at)
		VALUES ('analytics_event', '{}', 152, 'analytics', $1::river_job_state, 1, now() + $4::interval, now() - $3::interval, 2,
		        ARRAY[jsonb_build_object('at', now() - $3::interval, 'attempt', 2, 'error', $2::text, 'trace', '')],
		        CASE WHEN $1 IN ('cancelled', 'discarded', 'completed') THEN now() END)`,
		state, lastError, ago.String(), in.String())
}

// A sink that answers 401 (or 403, 404, 405, 407, a redirect) will not fix
// itself: status says so, with the last error, and exits 1.
func TestStatusAnalyticsMisconfigured(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)
	const unauthorized = "analytics endpoint answered 401 (check INTAKE_ANALYTICS_URL, the endpoint's credentials and any proxy)"
	insertAnalyticsJob(t, pool, "retryable", "analytics endpoint answered 503", 10*time.Minute, 20*time.Minute)
	insertAnalyticsJob(t, pool, "retryable", unauthorized, time.Minute, 29*time.Minute)
	insertAnalyticsJob(t, pool, "retryable", unauthorized, 2*time.Minute, 28*time.Minute)
	insertAnalyticsJob(t, pool, "cancelled", "JobCancelError: analytics sink refused the event: analytics endpoint answered 422", time.Second, -time.Second)

	s, err := statusOf(t, c)

	var stuck stuckError
	require.ErrorAs(t, err, &stuck)
	require.Equal(t, []string{"analytics: 3 jobs retrying, last error: " + unauthorized + "; fix the sink's configuration, then run intakectl analytics retry"}, s.Stuck)
	require.EqualValues(t, 3, s.Analytics.Retrying)
	require.Equal(t, unauthorized, s.Analytics.LastError)
	text, _, _ := c.run("status")
	require.Contains(t, text, "ANALYTICS  3 jobs retrying, last error: "+unauthorized)
}

// An outage fixes itself: the retrying jobs show, nothing is stuck.
func TestStatusAnalyticsOutageIsNotStuck(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)
	insertAnalyticsJob(t, pool, "retryable", "analytics endpoint answered 503", time.Minute, time.Minute)
	insertAnalyticsJob(t, pool, "retryable", "analytics endpoint unreachable: dial tcp 127.0.0.1:1: connect: connection refused", 2*time.Minute, 2*time.Minute)

	s, err := statusOf(t, c)

	require.NoError(t, err, "%v", s.Stuck)
	text := c.ok("status")
	require.Contains(t, text, "ANALYTICS  2 jobs retrying, last error: analytics endpoint answered 503")
	require.Contains(t, text, "STATUS  OK")
}

// A worker's heartbeat comes every 5 s: one last seen 48 s ago is gone
// (SIGKILLed, its host lost), not running.
func TestStatusWorkerSeenLongAgoIsNotRunning(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	testkit.Seed(t, pool, "go-engineer", 1)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now() - interval '1 hour', now() - interval '48 seconds')`)

	s, err := statusOf(t, c)
	var stuck stuckError
	require.ErrorAs(t, err, &stuck)
	require.Empty(t, s.Workers)
	require.Contains(t, s.Stuck[0], "no worker reported in the last 15s and work is waiting")
	out, _, _ := c.run("status")
	require.Regexp(t, `(?m)^WORKERS +0 running`, out)

	mustExec(t, pool, `UPDATE worker_heartbeats SET last_seen_at = now() - interval '3 seconds'`)
	s, _ = statusOf(t, c)
	require.Len(t, s.Workers, 1)
}

// The reconciler's finds: deliveries it re-enqueued (in all, and in the
// last day) and events undispatched past INTAKE_RECONCILE_AFTER.
func TestStatusCountsReconcilerFinds(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	testkit.Seed(t, pool, "go-engineer", 4)
	mustExec(t, pool, `INSERT INTO deliveries (application_id, reconciled_at)
		SELECT aggregate_id, now() - interval '1 hour' * row_number() OVER (ORDER BY id) * 20 FROM outbox_events`)
	mustExec(t, pool, `UPDATE outbox_events SET dispatched_at = now()
		WHERE id IN (SELECT id FROM outbox_events ORDER BY id LIMIT 1)`)
	mustExec(t, pool, `UPDATE outbox_events SET created_at = now() - interval '10 minutes'
		WHERE id IN (SELECT id FROM outbox_events WHERE dispatched_at IS NULL ORDER BY id LIMIT 2)`)

	s, _ := statusOf(t, c)
	require.Equal(t, postgres.ReconcilerFinds{Reconciled: 4, Recent: 1, StaleEvents: 2}, s.Reconciler)
	text, _, _ := c.run("status")
	require.Contains(t, text, "RECONCILE  4 confirmations re-enqueued (1 in the last 24h); 2 events undispatched past its threshold")
}

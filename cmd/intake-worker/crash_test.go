package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// The crash tests run real intake-worker processes and kill them.

const emailConcurrency = 5

func processEnv(dbURL string, mailSrv *testkit.SMTPServer) map[string]string {
	env := map[string]string{
		"DATABASE_URL":               dbURL,
		"INTAKE_STATUS_SECRET":       testkit.StatusSecret,
		"INTAKE_OPS_ADDR":            "127.0.0.1:0",
		"INTAKE_RELAY_POLL_INTERVAL": "200ms",
		"INTAKE_RETRY_BASE":          "50ms",
		"INTAKE_RETRY_MAX":           "500ms",
		"INTAKE_SMTP_TIMEOUT":        "1s",
		"INTAKE_JOB_TIMEOUT":         "2s",
		"INTAKE_RESCUE_AFTER":        "3500ms",
		"INTAKE_RECORD_TIMEOUT":      "1s",
		"INTAKE_SHUTDOWN_TIMEOUT":    "10s",
		"INTAKE_EMAIL_CONCURRENCY":   strconv.Itoa(emailConcurrency),
	}
	for k, v := range mailSrv.Env() {
		env[k] = v
	}
	return env
}

func crashSetup(t *testing.T, n int) (*pgxpool.Pool, string, *testkit.SMTPServer) {
	t.Helper()
	pool, dbURL := testkit.NewPool(t)
	_, err := postgres.NewStore(pool).CreatePosting(context.Background(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "go-engineer", n)
	mailSrv := testkit.StartSMTP(t)
	// Slow enough that a kill lands with emails in flight.
	mailSrv.SetDelay(20 * time.Millisecond)
	return pool, dbURL, mailSrv
}

func countWhere(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query).Scan(&n))
	return n
}

// expectedMessageIDs maps each application's confirmation Message-ID to 0.
func expectedMessageIDs(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id::text FROM applications`)
	require.NoError(t, err)
	defer rows.Close()
	ids := map[string]int{}
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids["confirmation."+id+"@intake.localhost"] = 0
	}
	require.NoError(t, rows.Err())
	return ids
}

func TestWorkerSIGKILLMidBatch(t *testing.T) {
	t.Parallel()
	const n = 400
	pool, dbURL, mailSrv := crashSetup(t, n)
	bin := testkit.Binary(t, "intake-worker")

	first := testkit.StartProcess(t, bin, processEnv(dbURL, mailSrv))
	first.WaitLog(t, "working", 20*time.Second)
	mailSrv.WaitMessages(t, n/4, 60*time.Second)
	first.Kill()
	killedAt := time.Now()
	inFlight := countWhere(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'running'`)

	second := testkit.StartProcess(t, bin, processEnv(dbURL, mailSrv))
	secondOps := second.WaitLog(t, "ops listening", 20*time.Second)["addr"].(string)
	second.WaitLog(t, "working", 20*time.Second)
	waitFor(t, 2*time.Minute, "every confirmation sent", func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM deliveries WHERE state = 'sent'`) == n
	})
	drain := time.Since(killedAt)
	// Every job the kill left running was rescued and run again by the
	// second worker, which counted each.
	resp, err := http.Get("http://" + secondOps + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	// River's own record of what it rescued, not the count taken just
	// after the kill: a fetch or a completion the dead process had already
	// sent can still commit around that instant, either way. A heartbeat
	// rescue leaves two rows with the rescue in their errors, the dead
	// worker's (finalized, rescued_as) and the one that ran again: only the
	// latter counts.
	rescued := countWhere(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND NOT metadata ? 'rescued_as'
		AND (errors::text LIKE '%rescued from dead worker%' OR errors::text LIKE '%Stuck job rescued%')`)
	require.Contains(t, string(metrics), fmt.Sprintf("intake_job_rescues_total{kind=\"confirmation_email\"} %d\n", rescued))

	counts := mailSrv.CountByMessageID()
	want := expectedMessageIDs(t, pool)
	duplicates := 0
	for id := range want {
		require.GreaterOrEqual(t, counts[id], 1, "no email for %s", id)
		duplicates += counts[id] - 1
	}
	require.Len(t, counts, n, "every message carries one of the applications' Message-IDs")
	require.LessOrEqual(t, duplicates, emailConcurrency, "a duplicate needs a job in flight at the kill")
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`))
	require.Equal(t, n, countWhere(t, pool, `SELECT count(*) FROM analytics_events`))
	t.Logf("SIGKILL drill: events=%d kills=1 jobs_running_at_kill=%d emails_received=%d duplicates=%d (all with the original Message-ID) drain_after_kill=%s",
		n, inFlight, len(mailSrv.Messages()), duplicates, drain.Round(100*time.Millisecond))
}

func TestWorkerSIGTERMLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	const n = 300
	pool, dbURL, mailSrv := crashSetup(t, n)
	bin := testkit.Binary(t, "intake-worker")

	first := testkit.StartProcess(t, bin, processEnv(dbURL, mailSrv))
	first.WaitLog(t, "working", 20*time.Second)
	mailSrv.WaitMessages(t, n/4, 60*time.Second)
	require.NoError(t, first.Terminate(t, 15*time.Second), "a graceful stop exits 0")
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM river_job WHERE state = 'running' AND kind IN ('confirmation_email', 'analytics_event')`),
		"running jobs finished before exit")

	second := testkit.StartProcess(t, bin, processEnv(dbURL, mailSrv))
	second.WaitLog(t, "working", 20*time.Second)
	waitFor(t, time.Minute, "every confirmation sent", func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM deliveries WHERE state = 'sent'`) == n
	})

	counts := mailSrv.CountByMessageID()
	for id := range expectedMessageIDs(t, pool) {
		require.Equal(t, 1, counts[id], "exactly one email for %s", id)
	}
	require.Len(t, mailSrv.Messages(), n)
	require.Zero(t, countWhere(t, pool, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`))
	require.Equal(t, n, countWhere(t, pool, `SELECT count(*) FROM analytics_events`))
}

// A worker killed during a job's last attempt: River's rescuer discards
// the job without running it again, so only the leader's periodic jobs can
// move the ledger on. The reconciler enqueues one new job (audited as the
// system); when that one's worker dies on its last attempt too, the
// abandoned check ends the delivery 'failed' (abandoned), which the status
// page and intakectl status report, instead of "being sent" for ever, and
// the reconciler does not try a third time.
func TestWorkerKilledOnLastAttemptEndsFailed(t *testing.T) {
	t.Parallel()
	pool, dbURL, mailSrv := crashSetup(t, 1)
	mailSrv.SetReplyDelay(800 * time.Millisecond) // the attempt waits for the greeting
	bin := testkit.Binary(t, "intake-worker")
	env := processEnv(dbURL, mailSrv)
	env["INTAKE_RECONCILE_INTERVAL"] = "1s"
	env["INTAKE_RECONCILE_AFTER"] = "1s"

	// killOnLastAttempt waits for a running attempt of a job the query
	// selects, makes it the job's last and kills the worker mid-send.
	killOnLastAttempt := func(w *testkit.Process, which string) {
		t.Helper()
		waitFor(t, time.Minute, "an attempt of "+which+" started", func() bool {
			tag, err := pool.Exec(context.Background(), `
				UPDATE river_job j SET max_attempts = attempt
				FROM deliveries d
				WHERE j.kind = 'confirmation_email' AND j.state = 'running' AND d.state = 'sending'
				  AND (d.reconciled_at IS NOT NULL) = $1`, which == "the reconciled job")
			require.NoError(t, err)
			return tag.RowsAffected() == 1
		})
		w.Kill()
	}

	first := testkit.StartProcess(t, bin, env)
	first.WaitLog(t, "working", 20*time.Second)
	killOnLastAttempt(first, "the first job")

	second := testkit.StartProcess(t, bin, env)
	second.WaitLog(t, "working", 20*time.Second)
	killOnLastAttempt(second, "the reconciled job")
	killedAt := time.Now()
	require.Equal(t, 1, countWhere(t, pool, `SELECT count(*) FROM audit_log WHERE actor = 'system' AND action = 'deliveries.reconcile'`))

	third := testkit.StartProcess(t, bin, env)
	third.WaitLog(t, "working", 20*time.Second)
	waitFor(t, 2*time.Minute, "the delivery ended failed", func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM deliveries WHERE state = 'failed' AND last_error_class = 'abandoned'`) == 1
	})
	t.Logf("killed on the last attempt of the reconciled job too: delivery failed (abandoned) %s after the second kill", time.Since(killedAt).Round(100*time.Millisecond))
	require.Equal(t, 2, countWhere(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'discarded'`))
	require.Equal(t, 2, countWhere(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email'`), "reconciled once, never again")
	require.Equal(t, 1, countWhere(t, pool, `SELECT count(*) FROM audit_log WHERE actor = 'system' AND action = 'deliveries.reconcile'`))
	require.Empty(t, mailSrv.Messages())
}

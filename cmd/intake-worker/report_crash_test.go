package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// Two real workers on one database; the leader builds and stores the
// report of the week that ended, takes the email's lease, and is killed
// (SIGKILL) while it waits for the SMTP server's greeting. The other
// worker takes the leadership, River rescues the dead leader's job, and it
// emails the stored report: in the end one reports row and one email for
// the week, and a later run changes nothing.
func TestWeeklyReportOnceWhenTheLeaderDies(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.NewPool(t)
	ctx := context.Background()
	_, err := postgres.NewStore(pool).CreatePosting(ctx, application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "go-engineer", 3)
	week := application.WeekOf(time.Now()).Previous()
	// The seeded applications were received last week; their confirmations
	// are not this test's business, so their events count as dispatched.
	_, err = pool.Exec(ctx, `UPDATE applications SET received_at = $1`, week.Start().Add(time.Hour))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE postings SET created_at = $1`, week.Start())
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE outbox_events SET dispatched_at = now()`)
	require.NoError(t, err)

	mailSrv := testkit.StartSMTP(t)
	// The leader's send sits waiting for the greeting, long enough to be
	// killed there on a loaded machine; its SMTP timeout is longer still.
	mailSrv.SetReplyDelay(8 * time.Second)
	env := processEnv(dbURL, mailSrv)
	env["INTAKE_REPORT_TO"] = "ops@example.com"
	env["INTAKE_SMTP_TIMEOUT"] = "9s"
	env["INTAKE_JOB_TIMEOUT"] = "10s"
	env["INTAKE_RECORD_TIMEOUT"] = "1s"
	// Short enough that the new leader's rescuer, whose first round comes
	// when it is elected (the dead leader's TTL, about 15 s, after the
	// kill), finds the job stuck at once.
	env["INTAKE_RESCUE_AFTER"] = "12s"
	bin := testkit.Binary(t, "intake-worker")

	// The first worker starts alone: it is the leader, and the only one
	// that can run the report (any worker works the maintenance queue).
	first := testkit.StartProcess(t, bin, env)
	leader := first.WaitLog(t, "working", 20*time.Second)["worker_id"].(string)
	waitFor(t, 60*time.Second, "the leader stores the report and takes the email's lease", func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM reports WHERE week = '`+week.String()+`' AND email_attempts = 1 AND emailed_at IS NULL`) == 1
	})
	var elected string
	require.NoError(t, pool.QueryRow(ctx, `SELECT leader_id FROM river_leader`).Scan(&elected))
	require.Equal(t, leader, elected)
	second := testkit.StartProcess(t, bin, env)
	other := second.WaitLog(t, "working", 20*time.Second)["worker_id"].(string)
	first.Kill()
	require.Empty(t, mailSrv.Messages(), "the leader died before its send got past the greeting")
	mailSrv.SetReplyDelay(0)

	waitFor(t, 2*time.Minute, "the new leader emails the report", func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM reports WHERE emailed_at IS NOT NULL`) == 1
	})
	require.Equal(t, 1, countWhere(t, pool, `SELECT count(*) FROM reports`))
	require.Equal(t, 2, countWhere(t, pool, `SELECT email_attempts FROM reports`), "the dead leader's attempt and the new one's")
	counts := mailSrv.CountByMessageID()
	require.Equal(t, map[string]int{"report." + week.String() + "@intake.localhost": 1}, counts)
	// The heartbeat rescue may run the dead leader's job before River has
	// elected anew; leadership still moves to the survivor.
	waitFor(t, time.Minute, "the survivor becomes leader", func() bool {
		var newLeader string
		err := pool.QueryRow(ctx, `SELECT leader_id FROM river_leader`).Scan(&newLeader)
		return err == nil && newLeader == other
	})

	// Another run for the week (an operator's, a restart's) finds the
	// report stored and emailed.
	_, err = pool.Exec(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, queue, state, priority)
		VALUES (jsonb_build_object('week', $1::text), 'weekly_report', 5, 'maintenance', 'available', 1)`, week.String())
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "the repeated run completes", func() bool {
		return countWhere(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'weekly_report' AND state = 'completed'`) == 2
	})
	require.Len(t, mailSrv.Messages(), 1)
	require.Equal(t, 1, countWhere(t, pool, `SELECT count(*) FROM reports`))
}

//go:build drills

package drill

import (
	"fmt"
	"testing"
	"time"
)

// TestWorkerDatabaseBlips: while confirmation emails are in the middle of
// being sent, every database connection the workers hold is terminated
// (pg_terminate_backend, as in a failover, a proxy restart or an idle
// reaper). The workers stay alive. SPEC invariant 5: a second copy may only
// come from a worker dying between the SMTP server's acceptance and the
// ledger's commit, so a live worker that loses its connection must still
// record what the server accepted, and nothing may be sent twice.
//
// This drill was added after the analytics-outage drill, run while the
// shared Postgres server was out of connection slots, caught a duplicate:
// the ledger's "sent" could not be recorded, the job failed and its retry
// sent the email again.
func TestWorkerDatabaseBlips(t *testing.T) {
	const (
		backlog = 600
		blips   = 5
	)
	// 200 ms per message: most of the time, most jobs are waiting for the
	// SMTP server's answer, and record it right after the blip.
	c := NewCluster(t, ClusterOpts{Workers: 2, Seed: backlog, SMTPDelay: 200 * time.Millisecond})

	blipTable := &Table{
		Title:  "worker database blips: the blips",
		Header: []string{"blip", "at", "emails sent", "email jobs running", "worker connections terminated"},
	}
	var last time.Time
	for b := range blips {
		c.waitCount(t, time.Minute, (b+1)*backlog/(blips+2), `SELECT count(*) FROM deliveries WHERE state = 'sent'`)
		running := c.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'running'`)
		sent := c.count(t, `SELECT count(*) FROM deliveries WHERE state = 'sent'`)
		terminated := c.count(t, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'intake-worker') x`)
		last = time.Now()
		blipTable.Row(b+1, time.Since(c.Began).Round(10*time.Millisecond), sent, running, terminated)
	}
	drain := c.WaitDrained(t, last, 2*time.Minute)
	v := c.Check(t, Expect{Seeded: backlog, MaxDuplicates: 0})
	for _, w := range c.Workers {
		if !w.Up() {
			t.Errorf("%s is down", w.Name)
		}
	}
	retried := c.count(t, `SELECT count(*) FROM deliveries WHERE attempts > 1`)

	blipTable.Print(t)
	m := Metrics("worker database blips: results")
	m.Row("backlog / workers / SMTP accept delay", fmt.Sprintf("%d / 2 / 200ms", backlog))
	m.Row("blips (all worker connections terminated)", blips)
	m.Row("emails received / applications", fmt.Sprintf("%d / %d", v.EmailsReceived, v.Applications))
	m.Row("deliveries attempted more than once", retried)
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails", v.Duplicates)
	m.Row("sink calls deduplicated (job ran twice)", v.SinkRepeatCalls)
	m.Row("everything settled, after the last blip", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "worker DB blips",
		Load:       fmt.Sprintf("%d backlog, 2 workers", backlog),
		Faults:     fmt.Sprintf("%d× terminate worker DB conns", blips),
		Lost:       v.Lost,
		Duplicates: v.Duplicates,
		Recovery:   drain.Settled,
	})
}

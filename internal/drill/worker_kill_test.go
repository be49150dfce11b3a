//go:build drills

package drill

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestWorkerSIGKILL: two workers drain a 5,000-application backlog while
// one of them is killed with SIGKILL ten times at random moments and
// restarted each time. SPEC invariants 4, 5, 6, 7 and 9 (SIGKILL loses
// nothing): every application gets its email, a duplicate only for a job
// in flight at a kill and with the original Message-ID, every event exactly
// one analytics record, nothing left undispatched.
func TestWorkerSIGKILL(t *testing.T) {
	const (
		backlog = 5000
		kills   = 10
	)
	c := NewCluster(t, ClusterOpts{Workers: 2, Seed: backlog, SMTPDelay: 10 * time.Millisecond})

	// Kill when the sent count crosses random marks between 2% and 85% of
	// the backlog, so every kill lands mid-drain with emails in flight.
	marks := make([]int, kills)
	for i := range marks {
		marks[i] = backlog*2/100 + rand.N(backlog*83/100)
	}
	slices.Sort(marks)

	type kill struct {
		at       time.Duration
		victim   string
		sent     int
		running  map[int64]bool // email jobs running on the victim when it was killed
		restart  time.Duration
		inFlight int // of those, the victim's: rescued later
		dups     int // of those, sent twice
	}
	var killed []kill
	var killedWorkers []string // River client ids of the killed processes
	var lastKill time.Time
	for _, mark := range marks {
		c.waitCount(t, 2*time.Minute, mark, `SELECT count(*) FROM deliveries WHERE state = 'sent'`)
		// Strike when at least half the email slots of both workers are
		// busy (or after 2 s), so the victim most likely has emails in
		// flight.
		strike := time.Now().Add(2 * time.Second)
		for time.Now().Before(strike) && c.count(t, `SELECT count(*) FROM river_job
				WHERE kind = 'confirmation_email' AND state = 'running'`) < EmailConcurrency {
			time.Sleep(2 * time.Millisecond)
		}
		victim := c.Workers[rand.N(len(c.Workers))]
		killedWorkers = append(killedWorkers, victim.WorkerID())
		c.Kill(victim)
		lastKill = time.Now()
		// The victim's jobs by River's own record: its worker id is its
		// River client id, the last entry of attempted_by. A job whose
		// email the ledger already calls sent had returned, and waited
		// only for River's batched completion: it is running in the table
		// but was not in flight, and its rescued run sends nothing.
		k := kill{at: time.Since(c.Began), victim: victim.Name, running: c.jobIDs(t, `SELECT `+jobSQL+` FROM river_job j
			WHERE kind = 'confirmation_email' AND state = 'running'
			  AND attempted_by[cardinality(attempted_by)] = '`+killedWorkers[len(killedWorkers)-1]+`'
			  AND NOT EXISTS (SELECT 1 FROM deliveries d
			                  WHERE d.application_id = (j.args->>'application_id')::uuid AND d.state = 'sent')`)}
		k.sent = c.count(t, `SELECT count(*) FROM deliveries WHERE state = 'sent'`)
		k.restart = c.Start(victim)
		killed = append(killed, k)
	}
	drain := c.WaitDrained(t, lastKill, 3*time.Minute)
	total := time.Since(c.Began)

	// Which jobs each kill left in flight: a job running on the victim (and
	// not already frozen by an earlier kill) that River later had to rescue.
	// Only those may have sent a second copy.
	rescued := c.jobIDs(t, `SELECT `+jobSQL+` FROM river_job WHERE kind = 'confirmation_email' AND `+rescuedSQL)
	duplicated := c.duplicatedJobs(t)
	frozen := map[int64]bool{}
	dupBound, dupsAtKills := 0, 0
	for i := range killed {
		k := &killed[i]
		for id := range k.running {
			if frozen[id] || !rescued[id] {
				continue
			}
			frozen[id] = true
			k.inFlight++
			if duplicated[id] {
				k.dups++
			}
		}
		if k.inFlight > EmailConcurrency {
			t.Errorf("kill %d: %d emails in flight on one worker, more than INTAKE_EMAIL_CONCURRENCY=%d", i+1, k.inFlight, EmailConcurrency)
		}
		dupBound += k.inFlight
		dupsAtKills += k.dups
	}
	if dupsAtKills != len(duplicated) {
		t.Errorf("%d duplicated emails, only %d of them from jobs in flight at a kill", len(duplicated), dupsAtKills)
	}
	// And by River's own record: every duplicated job was attempted by a
	// process that was then killed (its worker id is its River client id).
	dupIDs := slices.Collect(maps.Keys(duplicated))
	byKilled := c.count(t, `SELECT count(DISTINCT `+jobSQL+`) FROM river_job WHERE `+jobSQL+` = ANY($1) AND attempted_by && $2`, dupIDs, killedWorkers)
	if byKilled != len(duplicated) {
		t.Errorf("%d duplicated emails, only %d of their jobs attempted by a killed worker", len(duplicated), byKilled)
	}
	v := c.Check(t, Expect{Seeded: backlog, MaxDuplicates: dupBound})
	rescuedAnalytics := c.count(t, `SELECT count(DISTINCT `+jobSQL+`) FROM river_job WHERE kind = 'analytics_event' AND `+rescuedSQL)

	killTable := &Table{
		Title:  "worker SIGKILL: the kills",
		Header: []string{"kill", "at", "victim", "emails sent", "email jobs running on victim", "of those rescued", "duplicates", "restart took"},
	}
	for i, k := range killed {
		killTable.Row(i+1, k.at.Round(10*time.Millisecond), k.victim, k.sent, len(k.running), k.inFlight, k.dups, k.restart)
	}
	killTable.Print(t)
	m := Metrics("worker SIGKILL: results")
	m.Row("backlog (seeded applications)", backlog)
	m.Row("workers / INTAKE_EMAIL_CONCURRENCY", fmt.Sprintf("2 / %d", EmailConcurrency))
	m.Row("SMTP accept delay", "10ms")
	m.Row("SIGKILLs (victim restarted each time)", kills)
	m.Row("emails received / distinct Message-IDs", fmt.Sprintf("%d / %d", v.EmailsReceived, v.Delivered))
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails (same Message-ID)", v.Duplicates)
	m.Row("duplicated Message-IDs whose job was rescued (all must be)", fmt.Sprintf("%d / %d", v.RescuedDuplicates, v.DuplicatedIDs))
	m.Row("duplicated jobs attempted by a killed worker (all must be)", fmt.Sprintf("%d / %d", byKilled, len(duplicated)))
	m.Row("duplicate bound (Σ in flight on the victims)", dupBound)
	m.Row("duplicate bound (kills × concurrency)", kills*EmailConcurrency)
	m.Row("email jobs rescued after a kill", len(rescued))
	m.Row("analytics jobs rescued after a kill", rescuedAnalytics)
	m.Row("sink records / events", fmt.Sprintf("%d / %d", v.SinkRecords, v.Events))
	m.Row("sink calls deduplicated (job ran twice)", v.SinkRepeatCalls)
	m.Row("emails all out, after last kill", drain.Emails)
	m.Row("everything settled, after last kill", drain.Settled)
	m.Row("whole drain", total)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "worker SIGKILL",
		Load:       fmt.Sprintf("%d backlog, 2 workers", backlog),
		Faults:     fmt.Sprintf("%d× SIGKILL worker", kills),
		Lost:       v.Lost,
		Duplicates: v.Duplicates,
		Recovery:   drain.Settled,
	})
}

// jobIDs runs a query returning River job ids.
func (c *Cluster) jobIDs(t *testing.T, query string) map[int64]bool {
	t.Helper()
	rows, err := c.DB.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// duplicatedJobs returns the confirmation jobs whose Message-ID the SMTP
// server accepted more than once.
func (c *Cluster) duplicatedJobs(t *testing.T) map[int64]bool {
	t.Helper()
	counts := c.SMTP.CountByMessageID()
	rows, err := c.DB.Query(context.Background(),
		`SELECT DISTINCT `+jobSQL+`, args->>'application_id' FROM river_job WHERE kind = 'confirmation_email'`)
	if err != nil {
		t.Fatalf("confirmation jobs: %v", err)
	}
	defer rows.Close()
	dups := map[int64]bool{}
	for rows.Next() {
		var id int64
		var app string
		if err := rows.Scan(&id, &app); err != nil {
			t.Fatalf("scan: %v", err)
		}
		if counts[MessageID(app)] > 1 {
			dups[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("confirmation jobs: %v", err)
	}
	return dups
}

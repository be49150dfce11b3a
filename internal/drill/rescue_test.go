//go:build drills

package drill

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var rescueKills = flag.Int("rescue-kills", 3, "SIGKILLs in TestWorkerSIGKILLRescueTime (3, the short form, runs in CI)")

// TestWorkerSIGKILLRescueTime: two workers drain a backlog with the
// production settings for the job timeout, River's rescuer and the
// heartbeat (INTAKE_JOB_TIMEOUT 30s, INTAKE_RESCUE_AFTER 1m, heartbeat
// 2s / lease 5s / dead after 6s), while one of them, the other each time,
// is SIGKILLed with emails in flight. It measures, for every job running
// on the victim at the kill, the time until another worker runs it again,
// and checks that every one does within 15 s (River's rescuer alone would
// take INTAKE_RESCUE_AFTER + up to 30 s), that each kill's jobs are rescued
// from the victim's stopped heartbeat, and that duplicates come only from
// jobs running at a kill. `-rescue-kills N` runs a longer form.
func TestWorkerSIGKILLRescueTime(t *testing.T) {
	const bound = 15 * time.Second
	kills := *rescueKills
	backlog := 600*kills + 400
	c := NewCluster(t, ClusterOpts{Workers: 2, Seed: backlog, SMTPDelay: 300 * time.Millisecond, Env: map[string]string{
		"INTAKE_JOB_TIMEOUT":    "30s",
		"INTAKE_RECORD_TIMEOUT": "20s",
		"INTAKE_RESCUE_AFTER":   "1m",
	}})

	var waits []time.Duration
	runningAtKills := map[int64]bool{}
	// A job can be running at two kills (rescued from the first victim
	// onto the next one), and each kill may cost it a copy: the bound on
	// duplicates counts a job once per kill it was running at.
	inFlightAtKills := 0
	table := &Table{
		Title:  "worker SIGKILL rescue time: the kills",
		Header: []string{"kill", "victim", "jobs running on victim", "run again p50", "run again max"},
	}
	for i := range kills {
		victim := c.Workers[i%len(c.Workers)]
		victimID := victim.WorkerID()
		onVictim := `SELECT ` + jobSQL + ` FROM river_job WHERE state = 'running' AND attempted_by[cardinality(attempted_by)] = '` + victimID + `'`
		// Strike when the victim has half its email slots busy (or after
		// 5 s), so it dies with emails in flight.
		strike := time.Now().Add(5 * time.Second)
		for time.Now().Before(strike) && c.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'running'
				AND attempted_by[cardinality(attempted_by)] = '`+victimID+`'`) < EmailConcurrency/2 {
			time.Sleep(5 * time.Millisecond)
		}
		c.Kill(victim)
		killedAt := time.Now()
		running := c.jobIDs(t, onVictim)
		ids := make([]int64, 0, len(running))
		for id := range running {
			runningAtKills[id] = true
			inFlightAtKills++
			ids = append(ids, id)
		}
		kill := c.waitRunAgain(t, ids, victimID, killedAt, time.Minute)
		waits = append(waits, kill...)
		p50, worst := Percentile(kill, 50).Round(time.Millisecond), Percentile(kill, 100).Round(time.Millisecond)
		table.Row(i+1, victim.Name, len(running), p50, worst)
		t.Logf("kill %d of %s: %d jobs running on it, run again after p50 %s, max %s", i+1, victim.Name, len(running), p50, worst)
		c.Start(victim)
	}
	drain := c.WaitDrained(t, time.Now(), 3*time.Minute)

	// Only jobs running at a kill may have sent a second copy.
	duplicated := c.duplicatedJobs(t)
	for id := range duplicated {
		if !runningAtKills[id] {
			t.Errorf("job %d sent twice, but it was not running on a killed worker", id)
		}
	}
	v := c.Check(t, Expect{Seeded: backlog, MaxDuplicates: inFlightAtKills})
	byHeartbeat := c.count(t, `SELECT count(DISTINCT `+jobSQL+`) FROM river_job WHERE errors::text LIKE '%rescued from dead worker%'`)
	byRiver := c.count(t, `SELECT count(*) FROM river_job WHERE errors::text LIKE '%Stuck job rescued%'`)
	if byRiver > 0 {
		t.Errorf("%d jobs waited for River's own rescuer: the heartbeat rescue missed them", byRiver)
	}
	p50, worst := Percentile(waits, 50).Round(time.Millisecond), Percentile(waits, 100).Round(time.Millisecond)
	if worst > bound {
		t.Errorf("a killed worker's job ran again %s after the kill, more than %s", worst, bound)
	}

	table.Print(t)
	m := Metrics("worker SIGKILL rescue time: results")
	m.Row("backlog (seeded applications) / workers", fmt.Sprintf("%d / 2", backlog))
	m.Row("SIGKILLs (the two workers in turn, restarted after each rescue)", kills)
	m.Row("heartbeat / email lease / dead after", "2s / 5s / 6s (defaults)")
	m.Row("jobs running on the victims at the kills", len(runningAtKills))
	m.Row("kill to run again: p50 / max (bound)", fmt.Sprintf("%s / %s (%s)", p50, worst, bound))
	m.Row("rescued from a stopped heartbeat / by River's rescuer", fmt.Sprintf("%d / %d", byHeartbeat, byRiver))
	m.Row("duplicate emails (only jobs running at a kill)", fmt.Sprintf("%d (of %d possible: a job once per kill it was running at)", v.Duplicates, inFlightAtKills))
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("everything settled, after last restart", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "worker SIGKILL rescue time",
		Load:       fmt.Sprintf("%d backlog, 2 workers", backlog),
		Faults:     fmt.Sprintf("%d× SIGKILL worker, run again p50 %s max %s", kills, p50, worst),
		Lost:       v.Lost,
		Duplicates: v.Duplicates,
		Recovery:   drain.Settled,
	})
}

// waitRunAgain waits until each job the dead worker was running is run
// again by another worker (its last attempt is another's), or ended (a
// completion the worker sent just before dying, or a discard on its last
// attempt), and returns how long after killedAt each one was seen so.
func (c *Cluster) waitRunAgain(t *testing.T, ids []int64, dead string, killedAt time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	waits := make([]time.Duration, 0, len(ids))
	left := slices.Clone(ids)
	for len(left) > 0 {
		if time.Since(killedAt) > timeout {
			t.Fatalf("%d jobs of the killed worker %s still not run again after %s", len(left), dead, timeout)
		}
		// A job's rows: the dead worker's, finalized by the rescue
		// (rescued_as), is not the run again; the new one is.
		rows, err := c.DB.Query(context.Background(), `
			SELECT DISTINCT `+jobSQL+` FROM river_job WHERE `+jobSQL+` = ANY($1) AND NOT `+replacedSQL+`
			  AND (attempted_by[cardinality(attempted_by)] <> $2 OR state IN ('completed', 'cancelled', 'discarded'))`, left, dead)
		if err != nil {
			t.Fatalf("jobs run again: %v", err)
		}
		done, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatalf("jobs run again: %v", err)
		}
		seen := time.Since(killedAt)
		for range done {
			waits = append(waits, seen)
		}
		left = slices.DeleteFunc(left, func(id int64) bool { return slices.Contains(done, id) })
		time.Sleep(20 * time.Millisecond)
	}
	return waits
}

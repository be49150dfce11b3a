//go:build drills

package drill

import (
	"fmt"
	"testing"
	"time"
)

// TestGracefulRestarts: with load running, every worker and every API
// replica in turn gets SIGTERM and is restarted (a rolling deploy). SPEC
// invariant 9 (SIGTERM loses and duplicates nothing): zero lost, each
// Message-ID exactly once, and nothing client-visible but retried
// connection errors and 503s.
func TestGracefulRestarts(t *testing.T) {
	const (
		clients = 50
		total   = 1500
		// The load lasts about 30 s: longer than four restart steps at
		// their slowest (2 s pause, up to 2 s waiting to strike, the stop
		// and the restart), so every restart lands under load.
		rate  = 50.0 // per second
		burst = 25   // released together, twice a second
	)
	// A slow SMTP server (100 ms per message) keeps emails in flight when a
	// worker is told to stop; bursts keep requests in flight on an API.
	c := NewCluster(t, ClusterOpts{APIs: 2, Workers: 2, SMTPDelay: 100 * time.Millisecond})
	load := c.StartLoad(Load{Clients: clients, Total: total, Prefix: "graceful", Rate: rate, Burst: burst, Deadline: time.Minute})

	restarts := &Table{
		Title:  "graceful restarts: the rolling restart",
		Header: []string{"step", "at", "node", "email jobs running at SIGTERM", "requests in flight on it", "stop took", "exit", "restart took"},
	}
	order := append(append([]*Node{}, c.Workers...), c.APIs...)
	var downtime time.Duration // SIGTERM → the new process serving, the longest
	for i, n := range order {
		// Pace the restarts over the load, then strike while work is in
		// flight: emails being sent (workers), requests (APIs).
		time.Sleep(2 * time.Second)
		strike := time.Now().Add(2 * time.Second)
		for time.Now().Before(strike) {
			if n.kind == "api" && load.InFlight(n.URL()) >= 3 ||
				n.kind == "worker" && c.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'running'`) >= 6 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		running := c.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'running'`)
		inFlight := 0
		if n.kind == "api" {
			inFlight = load.InFlight(n.URL())
		}
		began := time.Now()
		err := c.Terminate(n)
		stopped := time.Since(began)
		exit := "0"
		if err != nil {
			exit = err.Error()
			t.Errorf("%s: SIGTERM exit: %v, want status 0", n.Name, err)
		}
		took := c.Start(n)
		downtime = max(downtime, time.Since(began))
		restarts.Row(i+1, time.Since(load.began).Round(10*time.Millisecond), n.Name, running, inFlight, stopped, exit, took)
	}
	if !load.Running() {
		t.Errorf("the load ended before the last restart; raise its size so the restarts land under load")
	}
	outcomes := load.Wait()
	stats := Stats(outcomes)
	drain := c.WaitDrained(t, time.Now(), 2*time.Minute)

	v := c.Check(t, Expect{Submissions: outcomes, MaxDuplicates: 0})
	if stats.Other > 0 || stats.GaveUp > 0 {
		t.Errorf("clients ended with other answers %v or gave up (%d)", stats.OtherStatuses, stats.GaveUp)
	}
	if n := c.count(t, `SELECT count(*) FROM river_job WHERE `+rescuedSQL); n > 0 {
		t.Errorf("%d jobs had to be rescued: a graceful stop must finish or hand back every job it holds", n)
	}
	if v.SinkRepeatCalls > 0 {
		t.Errorf("%d analytics jobs ran twice: a graceful stop must record every finished job", v.SinkRepeatCalls)
	}
	if stats.InFlight > 0 || stats.RateLimited > 0 {
		t.Errorf("clients saw %d 409 in-flight and %d 429: only connection errors and 503 are expected from a graceful restart", stats.InFlight, stats.RateLimited)
	}

	restarts.Print(t)
	m := Metrics("graceful restarts: results")
	m.Row("clients / applications / paced at", fmt.Sprintf("%d / %d / %.0f per s", clients, total, rate))
	m.Row("SIGTERM + restart", "worker-0, worker-1, api-0, api-1 (one at a time)")
	m.Row("load took", load.Took())
	m.Row("final 201 (original / replayed)", fmt.Sprintf("%d / %d", stats.Created, stats.Replayed))
	m.Row("other final answers / gave up", fmt.Sprintf("%v / %d", stats.OtherStatuses, stats.GaveUp))
	m.Row("client-visible, retried: connection errors / 503", fmt.Sprintf("%d / %d", stats.ConnErrors, stats.Unavailable))
	m.Row("connection errors by kind", fmt.Sprint(stats.ErrKinds))
	m.Row("longest client retry (first error → answer)", stats.MaxRetryTime)
	m.Row("longest replica gap (SIGTERM → new process serving)", downtime)
	m.Row("emails received / applications", fmt.Sprintf("%d / %d", v.EmailsReceived, v.Applications))
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails", v.Duplicates)
	m.Row("sink calls deduplicated (job ran twice)", v.SinkRepeatCalls)
	m.Row("everything settled after the load", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "graceful restarts",
		Load:       fmt.Sprintf("%d clients, %d apps, 2 APIs", clients, total),
		Faults:     "SIGTERM+restart 2 workers, 2 APIs",
		Lost:       v.Lost + stats.GaveUp,
		Duplicates: v.Duplicates,
		Recovery:   max(stats.MaxRetryTime, downtime),
	})
}

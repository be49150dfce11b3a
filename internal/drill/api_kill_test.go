//go:build drills

package drill

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAPISIGKILL: 200 clients submit 1,000 applications across two API
// replicas while one replica is killed with SIGKILL five times and
// restarted. SPEC section 5 ("API dies before commit", "API commits,
// response lost") and invariants 1 to 3: every key maps to exactly one
// application, applications and events one to one, and every client ends
// with its 201 or a replay of it.
func TestAPISIGKILL(t *testing.T) {
	const (
		clients = 200
		total   = 1000
		// The load lasts about 14 s: longer than five kill cycles at their
		// slowest (about 2.4 s each), so every kill lands under load.
		rate  = 70.0 // submissions per second
		burst = 70   // released together, once a second
		kills = 5
	)
	c := NewCluster(t, ClusterOpts{APIs: 2, Workers: 2})
	load := c.StartLoad(Load{Clients: clients, Total: total, Prefix: "apikill", Rate: rate, Burst: burst, Deadline: time.Minute})

	victim := c.APIs[0]
	killTable := &Table{
		Title:  "API SIGKILL: the kills",
		Header: []string{"kill", "at", "victim", "requests in flight on it", "answered so far", "down for", "restart took"},
	}
	for k := range kills {
		// Pace the kills over the load (a sleep to pace faults, not to wait
		// for a condition), then strike while a burst is in flight on the
		// victim: some requests have not committed yet, some have and are
		// writing their response.
		time.Sleep(500*time.Millisecond + rand.N(500*time.Millisecond))
		url := victim.URL()
		strike := time.Now().Add(2 * time.Second)
		for load.InFlight(url) < burst/10 && time.Now().Before(strike) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(rand.N(30 * time.Millisecond))
		inFlight := load.InFlight(url)
		c.Kill(victim)
		answered := load.Finished()
		down := 100*time.Millisecond + rand.N(300*time.Millisecond)
		time.Sleep(down)
		took := c.Start(victim)
		killTable.Row(k+1, time.Since(load.began).Round(10*time.Millisecond), victim.Name, inFlight, answered, down, took)
	}
	if !load.Running() {
		t.Errorf("the load ended before the last kill; raise its size so the kills land under load")
	}
	outcomes := load.Wait()
	stats := Stats(outcomes)
	drain := c.WaitDrained(t, time.Now(), 2*time.Minute)

	v := c.Check(t, Expect{Submissions: outcomes})
	if stats.Other > 0 || stats.GaveUp > 0 {
		t.Errorf("clients ended with other answers %v or gave up (%d): every one must end with 201 or its replay", stats.OtherStatuses, stats.GaveUp)
	}

	killTable.Print(t)
	m := Metrics("API SIGKILL: results")
	m.Row("clients / applications / paced at", fmt.Sprintf("%d / %d / %.0f per s", clients, total, rate))
	m.Row("API replicas / workers", "2 / 2")
	m.Row("SIGKILLs of api-0 (restarted each time)", kills)
	m.Row("load took", load.Took())
	m.Row("final 201 (original)", stats.Created)
	m.Row("final 201 replayed (Idempotent-Replayed)", stats.Replayed)
	m.Row("other final answers / gave up", fmt.Sprintf("%v / %d", stats.OtherStatuses, stats.GaveUp))
	m.Row("retries: connection errors / 503 / 409 in flight", fmt.Sprintf("%d / %d / %d", stats.ConnErrors, stats.Unavailable, stats.InFlight))
	m.Row("submissions that had to retry", stats.Retried)
	m.Row("connection errors by kind", fmt.Sprint(stats.ErrKinds))
	m.Row("longest client retry (first error → answer)", stats.MaxRetryTime)
	m.Row("applications / events / keys", fmt.Sprintf("%d / %d / %d", v.Applications, v.Events, v.Keys))
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails", v.Duplicates)
	m.Row("everything settled after the load", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "API SIGKILL",
		Load:       fmt.Sprintf("%d clients, %d apps, 2 APIs", clients, total),
		Faults:     fmt.Sprintf("%d× SIGKILL api", kills),
		Lost:       v.Lost + stats.GaveUp,
		Duplicates: v.Duplicates,
		Recovery:   stats.MaxRetryTime,
	})
}

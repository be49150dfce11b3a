//go:build drills

package drill

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestAnalyticsOutage: the HTTP analytics sink answers 503 while email
// load runs. SPEC section 5 ("Analytics sink offline: email unaffected")
// and invariant 6: the confirmation emails' latency (201 → accepted by the
// SMTP server) stays within a generous bound of the baseline, and once the
// sink is back every event is recorded exactly once.
func TestAnalyticsOutage(t *testing.T) {
	const (
		perPhase = 300
		rate     = 25.0 // per second: each phase lasts 12 s
		clients  = 10
	)
	c := NewCluster(t, ClusterOpts{APIs: 1, Workers: 2, TrackAcceptTimes: true})

	// Baseline: the sink works.
	baseline := c.StartLoad(Load{Clients: clients, Total: perPhase, Prefix: "baseline", Rate: rate}).Wait()
	c.WaitDrained(t, time.Now(), time.Minute)

	// Outage: the sink answers 503 for the whole phase.
	c.Sink.SetDown(true)
	downAt := time.Now()
	outage := c.StartLoad(Load{Clients: clients, Total: perPhase, Prefix: "outage", Rate: rate}).Wait()
	c.WaitEmails(t, time.Now(), time.Minute)
	during, err := StatusProbe(context.Background(), c)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	backlog := 0
	for _, state := range []string{"available", "running", "retryable", "scheduled"} {
		backlog += during.Jobs["analytics_event/"+state]
	}
	if backlog == 0 {
		t.Errorf("no analytics backlog during the outage: the sink outage was not exercised")
	}
	// The operator sees the backlog too.
	opBacklog := 0
	for _, j := range c.OperatorStatus(t).Jobs {
		if j.Kind == "analytics_event" && j.State != "completed" && j.State != "cancelled" && j.State != "discarded" {
			opBacklog += j.Jobs
		}
	}
	if opBacklog == 0 {
		t.Errorf("intakectl status shows no analytics backlog during the outage (SQL: %d jobs waiting)", backlog)
	}
	recordsDuringOutage := len(c.Sink.Records())
	c.Sink.SetDown(false)
	upAt := time.Now()
	outageLasted := upAt.Sub(downAt)
	drain := c.WaitDrained(t, upAt, 2*time.Minute)

	v := c.Check(t, Expect{Submissions: append(append([]Outcome{}, baseline...), outage...), MaxDuplicates: 0})
	if v.SinkRepeatCalls > 0 {
		t.Errorf("%d events were recorded by more than one accepted call", v.SinkRepeatCalls)
	}

	base := c.latencies(t, baseline)
	out := c.latencies(t, outage)
	bound := 2*Percentile(base, 99) + 200*time.Millisecond
	if p99 := Percentile(out, 99); p99 > bound {
		t.Errorf("email p99 latency during the analytics outage %s exceeds 2 × baseline p99 + 200ms = %s", p99, bound)
	}

	lat := &Table{
		Title:  "analytics outage: confirmation email latency (201 → SMTP accepted, stamped within 2 ms)",
		Header: []string{"phase", "emails", "p50", "p90", "p99", "max"},
	}
	lat.Row("sink up (baseline)", len(base), Percentile(base, 50), Percentile(base, 90), Percentile(base, 99), Percentile(base, 100))
	lat.Row("sink down (503)", len(out), Percentile(out, 50), Percentile(out, 90), Percentile(out, 99), Percentile(out, 100))
	lat.Print(t)
	m := Metrics("analytics outage: results")
	m.Row("applications per phase / paced at", fmt.Sprintf("%d / %.0f per s", perPhase, rate))
	m.Row("sink down for", outageLasted)
	m.Row("p99 bound (2 × baseline p99 + 200ms)", bound)
	m.Row("analytics jobs waiting at the end of the outage (SQL / intakectl status)", fmt.Sprintf("%d / %d", backlog, opBacklog))
	m.Row("sink records during the outage / before", fmt.Sprintf("%d / %d", recordsDuringOutage, perPhase))
	m.Row("sink records / events after recovery", fmt.Sprintf("%d / %d", v.SinkRecords, v.Events))
	m.Row("sink calls deduplicated (job ran twice)", v.SinkRepeatCalls)
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails", v.Duplicates)
	m.Row("every event recorded, after the sink is back", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "analytics outage",
		Load:       fmt.Sprintf("2×%d apps at %.0f/s", perPhase, rate),
		Faults:     fmt.Sprintf("sink 503 for %s", outageLasted.Round(time.Second)),
		Lost:       v.Lost,
		Duplicates: v.Duplicates,
		Recovery:   drain.Settled,
	})
}

// latencies is, per submission, the time from its 201 to the SMTP
// server's acceptance of its confirmation email.
func (c *Cluster) latencies(t *testing.T, outcomes []Outcome) []time.Duration {
	t.Helper()
	var ds []time.Duration
	for _, o := range outcomes {
		at, ok := c.Mail.AcceptedAt(MessageID(o.ID))
		if !ok {
			t.Errorf("%s: no acceptance time recorded", o.ID)
			continue
		}
		ds = append(ds, max(at.Sub(o.Done), 0))
	}
	return ds
}

//go:build drills

package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPoisonEvent: 1,000 applications are submitted through a real
// intake-api while no worker runs; then the oldest event's payload is
// corrupted so that it cannot become jobs, and a real intake-worker starts.
// The poison event must be quarantined at the relay's first round and every
// other event flow past it: 999 emails, none lost, none doubled, every other
// event in the sink, and the quarantined one flagged by `intakectl status
// --json` (exit 1) and counted by the worker's /readyz (still 200). Then
// the runbook: repair the payload, `intakectl outbox retry ID`, and the last
// email goes out with the system back to OK.
func TestPoisonEvent(t *testing.T) {
	const (
		total   = 1000
		clients = 20
	)
	c := NewCluster(t, ClusterOpts{APIs: 1, Workers: 1, WorkersStopped: true})
	load := c.StartLoad(Load{Clients: clients, Total: total, Prefix: "poison", Deadline: time.Minute})
	outcomes := load.Wait()
	if stats := Stats(outcomes); stats.Created != total {
		t.Fatalf("only %d of %d submissions created: %+v", stats.Created, total, stats)
	}

	// The oldest event is the first row every claim takes: before
	// quarantine, it failed every round and held up all 1,000.
	ctx := context.Background()
	var poisoned, poisonedApp string
	if err := c.DB.QueryRow(ctx, `
		UPDATE outbox_events SET payload = '{"posting_slug": 5}'
		WHERE id = (SELECT id FROM outbox_events ORDER BY created_at, id LIMIT 1)
		RETURNING id::text, aggregate_id::text`).Scan(&poisoned, &poisonedApp); err != nil {
		t.Fatalf("corrupt the oldest event: %v", err)
	}

	started := time.Now()
	worker := c.Workers[0]
	c.Start(worker)
	drain := c.WaitDrained(t, started, time.Minute)
	v := c.Check(t, Expect{Submissions: outcomes, Quarantined: 1})

	logged := worker.proc.WaitLog(t, "outbox event quarantined", 5*time.Second)
	if logged["event_id"] != poisoned {
		t.Errorf("the worker logged quarantined event %v, want %s", logged["event_id"], poisoned)
	}
	op := c.OperatorStatus(t)
	if op.Outbox.Quarantined != 1 || op.ExitCode != 1 || len(op.Stuck) != 1 || !strings.Contains(op.Stuck[0], "quarantined") {
		t.Errorf("intakectl status: %d quarantined, exit %d, stuck %q; want 1, exit 1, one reason naming the quarantine",
			op.Outbox.Quarantined, op.ExitCode, op.Stuck)
	}
	listed := c.quarantined(t)
	if len(listed) != 1 || listed[0].ID != poisoned || listed[0].AggregateID != poisonedApp {
		t.Errorf("intakectl outbox list --json: %+v, want only event %s", listed, poisoned)
	}
	readyStatus, ready := c.readyz(t, worker)
	if readyStatus != http.StatusOK || ready["outbox_quarantined"] != 1.0 {
		t.Errorf("worker /readyz: %d %v, want 200 with outbox_quarantined 1", readyStatus, ready)
	}

	// The runbook: fix the cause, retry the event.
	if _, err := c.DB.Exec(ctx, `UPDATE outbox_events SET payload = jsonb_build_object('application_id', aggregate_id, 'posting_slug', $2::text)
		WHERE id = $1`, poisoned, Slug); err != nil {
		t.Fatalf("repair the payload: %v", err)
	}
	retried := time.Now()
	if out, errOut, exit := c.Intakectl(t, "outbox", "retry", poisoned); exit != 0 || !strings.HasPrefix(string(out), "released 1 ") {
		t.Fatalf("intakectl outbox retry: exit %d\n%s%s", exit, out, errOut)
	}
	recovered := c.WaitDrained(t, retried, 30*time.Second)
	after := c.Check(t, Expect{Submissions: outcomes})
	opAfter := c.OperatorStatus(t)

	m := Metrics("poison event: results")
	m.Row("applications submitted (worker stopped) / clients", fmt.Sprintf("%d / %d", total, clients))
	m.Row("fault", "oldest event's payload set to {\"posting_slug\": 5}")
	m.Row("quarantine error", listed0Error(listed))
	m.Row("emails received / distinct Message-IDs, first drain", fmt.Sprintf("%d / %d", v.EmailsReceived, v.Delivered))
	m.Row("lost emails / lost events / duplicates, first drain", fmt.Sprintf("%d / %d / %d", v.LostEmails, v.LostEvents, v.Duplicates))
	m.Row("events quarantined (SQL / intakectl status)", fmt.Sprintf("%d / %d", v.Quarantined, op.Outbox.Quarantined))
	m.Row("intakectl status --json: exit / stuck reasons", fmt.Sprintf("%d / %d (%s)", op.ExitCode, len(op.Stuck), firstClause(op.Stuck)))
	m.Row("worker /readyz", fmt.Sprintf("%d, outbox_quarantined %v", readyStatus, ready["outbox_quarantined"]))
	m.Row("999 emails out, after the worker started", drain.Emails)
	m.Row("everything else settled, after the worker started", drain.Settled)
	m.Row("after the retry: emails / lost / duplicates", fmt.Sprintf("%d / %d / %d", after.Delivered, after.Lost, after.Duplicates))
	m.Row("after the retry: intakectl status exit / quarantined", fmt.Sprintf("%d / %d", opAfter.ExitCode, opAfter.Outbox.Quarantined))
	m.Row("retry → its email out", recovered.Emails)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "poison event",
		Load:       fmt.Sprintf("%d apps, 1 API, 1 worker", total),
		Faults:     "1 payload corrupted",
		Lost:       v.Lost + after.Lost,
		Duplicates: v.Duplicates + after.Duplicates,
		Recovery:   recovered.Settled,
	})
}

// quarantinedEvent is one row of `intakectl outbox list --json`.
type quarantinedEvent struct {
	ID          string `json:"id"`
	AggregateID string `json:"aggregate_id"`
	Error       string `json:"error"`
}

// quarantined runs `intakectl outbox list --json`.
func (c *Cluster) quarantined(t *testing.T) []quarantinedEvent {
	t.Helper()
	out, errOut, exit := c.Intakectl(t, "outbox", "list", "--json")
	var events []quarantinedEvent
	if err := json.Unmarshal(out, &events); exit != 0 || err != nil {
		t.Fatalf("intakectl outbox list --json: exit %d, %v\n%s%s", exit, err, out, errOut)
	}
	return events
}

// firstClause is the first reason up to its explanation in parentheses.
func firstClause(reasons []string) string {
	if len(reasons) == 0 {
		return "-"
	}
	clause, _, _ := strings.Cut(reasons[0], " (")
	return clause
}

func listed0Error(events []quarantinedEvent) string {
	if len(events) == 0 {
		return "-"
	}
	return events[0].Error
}

// readyz asks a worker's ops listener whether it is ready.
func (c *Cluster) readyz(t *testing.T, worker *Node) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(worker.URL() + "/readyz")
	if err != nil {
		t.Fatalf("%s /readyz: %v", worker.Name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s /readyz: %v", worker.Name, err)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s /readyz: %v: %s", worker.Name, err, raw)
	}
	return resp.StatusCode, body
}

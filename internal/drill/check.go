//go:build drills

package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/testkit"
)

// The checks here read the database with plain SQL and look at what the
// SMTP server and the analytics sink received. They use none of the code
// under test, so a bug in it cannot hide itself.

// rescuedSQL is true for a River job rescued from a dead worker: from its
// stopped heartbeat (db/river/jobs_rescue.sql) or by River's own rescuer.
const rescuedSQL = `(errors::text LIKE '%rescued from dead worker%' OR errors::text LIKE '%Stuck job rescued%')`

// jobSQL is the job a River row runs: the row's own id, or for a row a
// heartbeat rescue made (db/river/jobs_rescue_insert.sql) the id of the
// job's first row, so a job keeps one id through its rescues.
const jobSQL = `coalesce((metadata->>'rescued_from')::bigint, id)`

// replacedSQL is true for a River row a heartbeat rescue finalized and
// replaced with a new one (db/river/jobs_rescue.sql): history, not a job.
const replacedSQL = `(metadata ? 'rescued_as')`

// count runs a count(*) query.
func (c *Cluster) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := c.DB.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitCount waits until the query's count reaches at least want.
func (c *Cluster) waitCount(t *testing.T, timeout time.Duration, want int, query string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := c.count(t, query)
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d within %s, want at least %d", query, n, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StatusFacts are what `intakectl status` is specified to show (SPEC
// section 7): outbox backlog and the age of its oldest event, River jobs by
// kind and state, failed deliveries.
type StatusFacts struct {
	OutboxBacklog    int
	OldestEventAge   time.Duration
	Jobs             map[string]int // "kind/state" → count
	FailedDeliveries int
	// Quarantined events are not in OutboxBacklog: no relay tries them
	// until an operator retries them.
	Quarantined int
}

// Stuck reports what a healthy, idle system must not have: undispatched
// events or unfinished confirmation and analytics jobs.
func (s StatusFacts) Stuck() []string {
	var stuck []string
	if s.OutboxBacklog > 0 {
		stuck = append(stuck, fmt.Sprintf("%d undispatched events (oldest %s)", s.OutboxBacklog, s.OldestEventAge.Round(time.Millisecond)))
	}
	for ks, n := range s.Jobs {
		kind, state, _ := strings.Cut(ks, "/")
		if kind != "confirmation_email" && kind != "analytics_event" {
			continue // periodic jobs wait for their time
		}
		if state != "completed" && state != "cancelled" && state != "discarded" {
			stuck = append(stuck, fmt.Sprintf("%d jobs %s", n, ks))
		}
	}
	sort.Strings(stuck)
	return stuck
}

// StatusProbe reads the facts `intakectl status` reports with the drill's
// own SQL: the drills wait on it and judge by it. At the end of every drill,
// Check also runs the real `intakectl status --json` (OperatorStatus) and
// fails when the operator's view disagrees with these facts.
var StatusProbe = func(ctx context.Context, c *Cluster) (StatusFacts, error) {
	return sqlStatus(ctx, c.DB)
}

// OperatorReport is `intakectl status --json` (cmd/intakectl/status.go).
type OperatorReport struct {
	OK     bool     `json:"ok"`
	Stuck  []string `json:"stuck"`
	Outbox struct {
		Undispatched int `json:"undispatched"`
		Quarantined  int `json:"quarantined"`
	} `json:"outbox"`
	Workers []struct {
		ID string `json:"id"`
	} `json:"workers"`
	Jobs []struct {
		Kind  string `json:"kind"`
		State string `json:"state"`
		Jobs  int    `json:"jobs"`
	} `json:"jobs"`
	Deliveries []struct {
		State          string `json:"state"`
		Deliveries     int    `json:"deliveries"`
		Unacknowledged int    `json:"unacknowledged"`
	} `json:"deliveries"`
	ExitCode int `json:"-"`
}

// OperatorStatus runs `intakectl status --json` on the drill's database:
// the hook through which the drills see what an operator would.
func (c *Cluster) OperatorStatus(t *testing.T) OperatorReport {
	t.Helper()
	stdout, stderr, exit := c.Intakectl(t, "status", "--json")
	r := OperatorReport{ExitCode: exit}
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("intakectl status --json (exit %d): %v\nstdout: %s\nstderr: %s", r.ExitCode, err, stdout, stderr)
	}
	return r
}

// Intakectl runs the real intakectl binary on the drill's database and
// returns what it printed and its exit code.
func (c *Cluster) Intakectl(t *testing.T, args ...string) (stdout, stderr []byte, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t, "intakectl"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DATABASE_URL=" + c.DBURL,
		"INTAKE_STATUS_SECRET=" + testkit.StatusSecret}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		exitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("intakectl %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.Bytes(), errOut.Bytes(), exitCode
}

func sqlStatus(ctx context.Context, db *pgxpool.Pool) (StatusFacts, error) {
	s := StatusFacts{Jobs: map[string]int{}}
	var oldest float64
	if err := db.QueryRow(ctx, `
		SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM outbox_events WHERE dispatched_at IS NULL AND quarantined_at IS NULL`).Scan(&s.OutboxBacklog, &oldest); err != nil {
		return s, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NOT NULL`).Scan(&s.Quarantined); err != nil {
		return s, err
	}
	s.OldestEventAge = time.Duration(oldest * float64(time.Second))
	rows, err := db.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job GROUP BY 1, 2`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return s, err
		}
		s.Jobs[kind+"/"+state] = n
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	err = db.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE state = 'failed'`).Scan(&s.FailedDeliveries)
	return s, err
}

// Drain is how long the system took to settle after a moment of interest.
type Drain struct {
	// Emails: every application's confirmation settled in the ledger (sent,
	// or failed when refused permanently) and every sent one received.
	Emails time.Duration
	// Settled: additionally the outbox is empty, every event is in the sink
	// and no River job is unfinished (a killed worker's jobs rescued).
	Settled time.Duration
}

// emailsSettled reports whether every application's confirmation is
// settled in the ledger and every sent one was received. An application
// whose event is quarantined gets no email until its event is retried.
func (c *Cluster) emailsSettled(t *testing.T) (ok bool, unsettled, sent int) {
	t.Helper()
	unsettled = c.count(t, `
		SELECT count(*) FROM applications a LEFT JOIN deliveries d ON d.application_id = a.id
		WHERE (d.state IS NULL OR d.state NOT IN ('sent', 'failed'))
		  AND NOT EXISTS (SELECT 1 FROM outbox_events e WHERE e.aggregate_id = a.id AND e.quarantined_at IS NOT NULL)`)
	sent = c.count(t, `SELECT count(*) FROM deliveries WHERE state = 'sent'`)
	return unsettled == 0 && len(c.SMTP.CountByMessageID()) >= sent, unsettled, sent
}

// WaitEmails waits until every confirmation is settled (see Drain.Emails)
// and returns how long that took from since.
func (c *Cluster) WaitEmails(t *testing.T, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, unsettled, sent := c.emailsSettled(t)
		if ok {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("emails not settled within %s: %d confirmations unsettled, %d sent, %d Message-IDs received",
				timeout, unsettled, sent, len(c.SMTP.CountByMessageID()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitDrained waits, from since, until the system has settled, or fails
// the test at timeout.
func (c *Cluster) WaitDrained(t *testing.T, since time.Time, timeout time.Duration) Drain {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var d Drain
	for {
		ok, unsettled, sent := c.emailsSettled(t)
		if d.Emails == 0 && ok {
			d.Emails = time.Since(since)
		}
		if d.Emails != 0 {
			events := c.count(t, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NULL`)
			st, err := StatusProbe(context.Background(), c)
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			if len(st.Stuck()) == 0 && len(c.Sink.Records()) >= events {
				d.Settled = time.Since(since)
				return d
			}
		}
		if time.Now().After(deadline) {
			st, _ := StatusProbe(context.Background(), c)
			t.Fatalf("not drained within %s: %d confirmations unsettled, %d sent, %d Message-IDs received, sink %d records; stuck: %v",
				timeout, unsettled, sent, len(c.SMTP.CountByMessageID()), len(c.Sink.Records()), st.Stuck())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Expect is what a drill allows.
type Expect struct {
	// Submissions made through the API; each key must map to exactly one
	// application and end with its 201 (original or replayed).
	Submissions []Outcome
	// Seeded applications inserted before the drill (no keys).
	Seeded int
	// Refused addresses: their delivery must be 'failed' (permanent), their
	// job cancelled, and no message for them accepted.
	Refused map[string]bool
	// MaxDuplicates bounds extra copies of confirmation emails; 0 demands
	// exactly one copy each.
	MaxDuplicates int
	// Quarantined is how many events the drill made impossible to dispatch:
	// exactly that many must be quarantined, their applications without
	// jobs, email or analytics record, and intakectl status must flag them.
	Quarantined int
}

// Verdict is what the checks counted.
type Verdict struct {
	Applications, Events int
	Keys                 int
	LostEmails           int // applications whose email never arrived (and was not refused)
	LostEvents           int // events with no sink record (quarantined ones aside)
	Quarantined          int
	Lost                 int
	Duplicates           int // extra copies of confirmation emails
	DuplicatedIDs        int // Message-IDs received more than once
	RescuedDuplicates    int // duplicated Message-IDs whose job was rescued from a dead worker
	EmailsReceived       int
	SinkRecords          int
	SinkRepeatCalls      int // calls the sink deduplicated (a job ran twice)
	Delivered, Failed    int
	EmailJobs            map[string]int
	Violations           int
}

// Check verifies the invariants and returns the counts. Each violation is
// reported with t.Errorf (the drill goes on to print its table).
func (c *Cluster) Check(t *testing.T, e Expect) Verdict {
	t.Helper()
	ctx := context.Background()
	var v Verdict
	fail := func(format string, args ...any) {
		t.Helper()
		v.Violations++
		t.Errorf(format, args...)
	}

	// Invariant 1: applications ↔ application.submitted events, one to one.
	v.Applications = c.count(t, `SELECT count(*) FROM applications`)
	v.Events = c.count(t, `SELECT count(*) FROM outbox_events`)
	if n := c.count(t, `SELECT count(*) FROM applications a WHERE NOT EXISTS (
			SELECT 1 FROM outbox_events e WHERE e.aggregate_id = a.id AND e.kind = 'application.submitted')`); n != 0 {
		fail("invariant 1: %d applications without their application.submitted event", n)
	}
	if n := c.count(t, `SELECT count(*) FROM outbox_events e WHERE NOT EXISTS (
			SELECT 1 FROM applications a WHERE a.id = e.aggregate_id)`); n != 0 {
		fail("invariant 1: %d events without an application", n)
	}
	if n := c.count(t, `SELECT count(*) FROM (SELECT aggregate_id FROM outbox_events
			WHERE kind = 'application.submitted' GROUP BY 1 HAVING count(*) > 1) x`); n != 0 {
		fail("invariant 1: %d applications with more than one event", n)
	}
	if want := e.Seeded + len(e.Submissions); v.Applications != want {
		fail("%d applications, want %d (%d seeded + %d submitted)", v.Applications, want, e.Seeded, len(e.Submissions))
	}
	// Invariant 7: nothing left undispatched but the quarantined events.
	if n := c.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL AND quarantined_at IS NULL`); n != 0 {
		fail("invariant 7: %d events still undispatched", n)
	}
	v.Quarantined = c.count(t, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NOT NULL`)
	if v.Quarantined != e.Quarantined {
		fail("%d events quarantined, want %d", v.Quarantined, e.Quarantined)
	}
	// SKIP LOCKED: each event became exactly one email job and one analytics
	// job. A row a heartbeat rescue replaced (replacedSQL) is not a job
	// of its own: its new row runs it.
	if n := c.count(t, `SELECT count(*) FROM (SELECT args->>'application_id' FROM river_job
			WHERE kind = 'confirmation_email' AND NOT `+replacedSQL+` GROUP BY 1 HAVING count(*) > 1) x`); n != 0 {
		fail("%d applications with more than one confirmation job (an event dispatched twice)", n)
	}
	if n := c.count(t, `SELECT count(*) FROM (SELECT args->>'event_id' FROM river_job
			WHERE kind = 'analytics_event' AND NOT `+replacedSQL+` GROUP BY 1 HAVING count(*) > 1) x`); n != 0 {
		fail("%d events with more than one analytics job (an event dispatched twice)", n)
	}

	// Invariants 2 and 3: every key maps to exactly one application, the one
	// its final 201 names, and no application lacks its key.
	c.checkKeys(t, ctx, e.Submissions, fail)
	v.Keys = len(e.Submissions)

	// The ledger, the jobs and the SMTP server, per application.
	type app struct {
		id, email, state, class, jobState string
		quarantined                       bool
	}
	var apps []app
	rows, err := c.DB.Query(ctx, `
		SELECT a.id::text, a.email, coalesce(d.state, ''), coalesce(d.last_error_class, ''), coalesce(j.state::text, ''),
		       EXISTS (SELECT 1 FROM outbox_events e WHERE e.aggregate_id = a.id AND e.quarantined_at IS NOT NULL)
		FROM applications a
		LEFT JOIN deliveries d ON d.application_id = a.id
		LEFT JOIN river_job j ON j.kind = 'confirmation_email' AND j.args->>'application_id' = a.id::text
			AND NOT `+replacedSQL)
	if err != nil {
		t.Fatalf("applications: %v", err)
	}
	for rows.Next() {
		var a app
		if err := rows.Scan(&a.id, &a.email, &a.state, &a.class, &a.jobState, &a.quarantined); err != nil {
			t.Fatalf("scan: %v", err)
		}
		apps = append(apps, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("applications: %v", err)
	}

	msgs := c.SMTP.Messages()
	counts := map[string]int{}
	rcptOf := map[string]map[string]bool{}
	for _, m := range msgs {
		counts[m.MessageID]++
		if rcptOf[m.MessageID] == nil {
			rcptOf[m.MessageID] = map[string]bool{}
		}
		for _, to := range m.To {
			rcptOf[m.MessageID][to] = true
		}
	}
	v.EmailsReceived = len(msgs)
	v.EmailJobs = map[string]int{}
	expected := map[string]bool{}
	var examples []string
	for _, a := range apps {
		mid := MessageID(a.id)
		expected[mid] = true
		v.EmailJobs[a.jobState]++
		n := counts[mid]
		if a.quarantined {
			if a.state != "" || a.jobState != "" || n != 0 {
				fail("application %s: its event is quarantined but ledger %q, job %q, %d copies accepted; want none", a.id, a.state, a.jobState, n)
			}
			continue
		}
		if e.Refused[a.email] {
			v.Failed++
			if a.state != "failed" || a.class != "permanent" || a.jobState != "cancelled" {
				fail("refused %s: ledger %s/%s, job %s; want failed/permanent, cancelled", a.id, a.state, a.class, a.jobState)
			}
			if n != 0 {
				fail("refused %s: %d copies accepted", a.id, n)
			}
			if r := c.Mail.RCPTs(a.email); r != 1 {
				fail("refused %s: %d RCPTs for its address, want 1 (a permanent failure is never retried)", a.id, r)
			}
			continue
		}
		if n == 0 {
			v.LostEmails++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("%s (ledger %q, job %q)", a.id, a.state, a.jobState))
			}
			continue
		}
		v.Delivered++
		v.Duplicates += n - 1
		if n > 1 {
			v.DuplicatedIDs++
		}
		if a.state != "sent" || a.jobState != "completed" {
			fail("application %s: email received but ledger %q, job %q; want sent, completed", a.id, a.state, a.jobState)
		}
		if len(rcptOf[mid]) != 1 || !rcptOf[mid][a.email] {
			fail("application %s: its Message-ID went to %v, want only its applicant", a.id, rcptOf[mid])
		}
	}
	if v.LostEmails > 0 {
		fail("invariant 4: %d applications never got their confirmation email, e.g. %v", v.LostEmails, examples)
	}
	// Invariant 5: a second copy only from a worker that died mid-send, so
	// only for a job River had to rescue.
	var dupApps []string
	for _, a := range apps {
		if counts[MessageID(a.id)] > 1 {
			dupApps = append(dupApps, a.id)
		}
	}
	if len(dupApps) > 0 {
		rows, err := c.DB.Query(ctx, `
			SELECT args->>'application_id', attempt, `+rescuedSQL+`, coalesce(errors::text, '')
			FROM river_job WHERE kind = 'confirmation_email' AND args->>'application_id' = ANY($1)`, dupApps)
		if err != nil {
			t.Fatalf("duplicated jobs: %v", err)
		}
		for rows.Next() {
			var id, errs string
			var attempt int
			var rescued bool
			if err := rows.Scan(&id, &attempt, &rescued, &errs); err != nil {
				t.Fatalf("scan: %v", err)
			}
			if rescued {
				v.RescuedDuplicates++
			} else if v.Violations < 20 {
				fail("invariant 5: application %s got %d copies but its job (attempt %d) was never rescued from a dead worker; errors: %.300s",
					id, counts[MessageID(id)], attempt, errs)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("duplicated jobs: %v", err)
		}
	}
	for mid := range counts {
		if !expected[mid] {
			fail("invariant 5: message with Message-ID %q matches no application", mid)
		}
	}
	if e.MaxDuplicates == 0 && v.Duplicates > 0 {
		fail("invariants 5 and 9: %d duplicate emails (%d Message-IDs twice or more), want exactly one each", v.Duplicates, v.DuplicatedIDs)
	} else if v.Duplicates > e.MaxDuplicates {
		fail("invariant 5: %d duplicate emails, more than the %d jobs that can have been in flight at the kills", v.Duplicates, e.MaxDuplicates)
	}

	// Invariant 6: every event exactly one record in the sink, matching it.
	records := c.Sink.Records()
	v.SinkRecords = len(records)
	rows, err = c.DB.Query(ctx, `SELECT id::text, aggregate_id::text, kind, quarantined_at IS NOT NULL FROM outbox_events`)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var id, appID, kind string
		var quarantined bool
		if err := rows.Scan(&id, &appID, &kind, &quarantined); err != nil {
			t.Fatalf("scan: %v", err)
		}
		seen[id] = true
		raw, ok := records[id]
		if quarantined {
			if ok {
				fail("quarantined event %s has an analytics record", id)
			}
			continue
		}
		if !ok {
			v.LostEvents++
			continue
		}
		var rec struct {
			EventID       string `json:"event_id"`
			Kind          string `json:"kind"`
			ApplicationID string `json:"application_id"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil || rec.EventID != id || rec.Kind != kind || rec.ApplicationID != appID {
			fail("sink record for event %s does not match it: %s", id, raw)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("events: %v", err)
	}
	if v.LostEvents > 0 {
		fail("invariant 6: %d events have no analytics record", v.LostEvents)
	}
	for id := range records {
		if !seen[id] {
			fail("invariant 6: sink record %s matches no event", id)
		}
	}
	for _, n := range c.Sink.Calls() {
		v.SinkRepeatCalls += n - 1
	}
	v.Lost = v.LostEmails + v.LostEvents

	// What an operator would see.
	st, err := StatusProbe(ctx, c)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if stuck := st.Stuck(); len(stuck) > 0 {
		fail("status: stuck %v", stuck)
	}
	if st.FailedDeliveries != len(e.Refused) {
		fail("status: %d failed deliveries, want %d", st.FailedDeliveries, len(e.Refused))
	}
	c.checkOperatorStatus(t, st, e, v, fail)
	return v
}

// checkOperatorStatus compares `intakectl status --json` with the drill's
// own facts: the same backlog, the same job counts, the failed deliveries
// flagged for an operator (and nothing else), a running worker reported,
// and the exit status saying whether something is stuck.
func (c *Cluster) checkOperatorStatus(t *testing.T, st StatusFacts, e Expect, v Verdict, fail func(string, ...any)) {
	t.Helper()
	op := c.OperatorStatus(t)
	if op.Outbox.Undispatched != st.OutboxBacklog {
		fail("intakectl status: %d undispatched events, SQL says %d", op.Outbox.Undispatched, st.OutboxBacklog)
	}
	if op.Outbox.Quarantined != st.Quarantined {
		fail("intakectl status: %d quarantined events, SQL says %d", op.Outbox.Quarantined, st.Quarantined)
	}
	opJobs := map[string]int{}
	for _, j := range op.Jobs {
		opJobs[j.Kind+"/"+j.State] += j.Jobs
	}
	for _, ks := range append(slices.Collect(maps.Keys(st.Jobs)), slices.Collect(maps.Keys(opJobs))...) {
		if opJobs[ks] != st.Jobs[ks] {
			fail("intakectl status: %d jobs %s, SQL says %d", opJobs[ks], ks, st.Jobs[ks])
		}
	}
	opDeliveries := map[string]int{}
	unacknowledged := 0
	for _, d := range op.Deliveries {
		opDeliveries[d.State] += d.Deliveries
		unacknowledged += d.Unacknowledged
	}
	if opDeliveries["sent"] != v.Delivered || opDeliveries["failed"] != len(e.Refused) {
		fail("intakectl status: deliveries %v, want %d sent and %d failed", opDeliveries, v.Delivered, len(e.Refused))
	}
	if unacknowledged != len(e.Refused) {
		fail("intakectl status: %d failed deliveries awaiting an operator, want %d", unacknowledged, len(e.Refused))
	}
	if len(op.Workers) == 0 {
		fail("intakectl status: no worker reported, with %d running", len(c.Workers))
	}
	// Only refused deliveries and quarantined events need an operator, one
	// reason each.
	reasons := 0
	if len(e.Refused) > 0 {
		reasons++
	}
	if e.Quarantined > 0 {
		reasons++
	}
	wantOK := reasons == 0
	if op.OK != wantOK || (op.ExitCode == 0) != wantOK || len(op.Stuck) != reasons {
		fail("intakectl status: ok=%v exit %d stuck %q; want ok=%v with %d reasons (only refused deliveries and quarantined events need an operator)",
			op.OK, op.ExitCode, op.Stuck, wantOK, reasons)
	}
}

// checkKeys checks every submission's key against the database.
func (c *Cluster) checkKeys(t *testing.T, ctx context.Context, subs []Outcome, fail func(string, ...any)) {
	t.Helper()
	if len(subs) == 0 {
		return
	}
	keys := make([]string, len(subs))
	emails := make([]string, len(subs))
	for i, o := range subs {
		keys[i], emails[i] = o.Key, o.Email
	}
	type keyRow struct{ app, state, email string }
	byKey := map[string]keyRow{}
	rows, err := c.DB.Query(ctx, `
		SELECT k.key, coalesce(k.application_id::text, ''), k.state, coalesce(a.email, '')
		FROM idempotency_keys k LEFT JOIN applications a ON a.id = k.application_id
		WHERE k.key = ANY($1)`, keys)
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	for rows.Next() {
		var k string
		var r keyRow
		if err := rows.Scan(&k, &r.app, &r.state, &r.email); err != nil {
			t.Fatalf("scan: %v", err)
		}
		byKey[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("keys: %v", err)
	}
	appsByEmail := map[string][]string{}
	rows, err = c.DB.Query(ctx, `SELECT email, id::text FROM applications WHERE email = ANY($1)`, emails)
	if err != nil {
		t.Fatalf("applications by email: %v", err)
	}
	for rows.Next() {
		var email, id string
		if err := rows.Scan(&email, &id); err != nil {
			t.Fatalf("scan: %v", err)
		}
		appsByEmail[email] = append(appsByEmail[email], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("applications by email: %v", err)
	}

	apps := map[string]string{}
	bad := 0
	report := func(format string, args ...any) {
		t.Helper()
		bad++
		if bad <= 10 {
			fail(format, args...)
		}
	}
	for _, o := range subs {
		r, ok := byKey[o.Key]
		switch {
		case o.GaveUp != "":
			report("key %s: client gave up: %s", o.Key, o.GaveUp)
		case o.Status != http.StatusCreated:
			report("key %s: final answer %d %s, want 201 or its replay", o.Key, o.Status, o.Body)
		case !ok:
			report("key %s: answered 201 but not stored", o.Key)
		case r.app == "" || r.state != "completed":
			report("key %s: stored in state %q without an application", o.Key, r.state)
		case r.app != o.ID:
			report("key %s: answered application %s, stored %s", o.Key, o.ID, r.app)
		case r.email != o.Email:
			report("key %s: its application is someone else's", o.Key)
		}
		if other, dup := apps[r.app]; dup && r.app != "" {
			report("keys %s and %s map to the same application %s", other, o.Key, r.app)
		}
		apps[r.app] = o.Key
		if ids := appsByEmail[o.Email]; len(ids) != 1 {
			report("key %s: %d applications for its email, want 1", o.Key, len(ids))
		}
	}
	if bad > 10 {
		fail("... and %d more key violations", bad-10)
	}
}

// Percentile returns the p-th percentile (0..100) of ds, nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

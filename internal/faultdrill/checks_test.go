//go:build drills

package faultdrill

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// messageID is the Message-ID the worker gives an application's
// confirmation email (internal/mail), with the default sender's domain.
func messageID(applicationID string) string {
	return "confirmation." + applicationID + "@intake.localhost"
}

// rows runs a query on the drill's own pool and returns its values,
// retrying a few times: right after a restart the pool may hand out a
// connection the server has closed.
func (s *system) rows(query string, args ...any) ([][]any, error) {
	var err error
	for range 5 {
		var out [][]any
		out, err = s.rowsOnce(query, args...)
		if err == nil {
			return out, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, err
}

func (s *system) rowsOnce(query string, args ...any) ([][]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// strings2 runs a query returning two text columns (NULL reads as "").
func (s *system) strings2(t *testing.T, query string, args ...any) [][2]string {
	t.Helper()
	rows, err := s.rows(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out := make([][2]string, 0, len(rows))
	for _, r := range rows {
		a, _ := r[0].(string)
		b, _ := r[1].(string)
		out = append(out, [2]string{a, b})
	}
	return out
}

// drainedFor reports whether every application received at or before t0
// has its confirmation email at the SMTP server and its analytics record
// at the sink.
func (s *system) drainedFor(t0 time.Time) bool {
	rows, err := s.rows(`SELECT a.id::text, e.id::text FROM applications a
		JOIN outbox_events e ON e.aggregate_id = a.id WHERE a.received_at <= $1`, t0)
	if err != nil {
		return false
	}
	mails := s.smtp.CountByMessageID()
	records := s.sink.Records()
	for _, r := range rows {
		app, _ := r[0].(string)
		ev, _ := r[1].(string)
		if mails[messageID(app)] == 0 {
			return false
		}
		if _, ok := records[ev]; !ok {
			return false
		}
	}
	return true
}

// catchUp measures, in the background, how long after t0 the backlog of
// applications received by t0 is fully delivered (email and analytics).
func (s *system) catchUp(t0 time.Time, timeout time.Duration) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	go func() {
		d, ok := waitFor(timeout, func() bool { return s.drainedFor(t0) })
		if !ok {
			d = -1
		}
		ch <- d
	}()
	return ch
}

// quiescent reports whether the system has finished all its work: nothing
// undispatched, no River job waiting or running, every email and every
// analytics record delivered.
func (s *system) quiescent(t *testing.T) bool {
	apps := s.count(t, `SELECT count(*) FROM applications`)
	return s.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`) == 0 &&
		s.count(t, `SELECT count(*) FROM river_job WHERE state IN ('available', 'pending', 'running', 'retryable', 'scheduled')`) == 0 &&
		s.count(t, `SELECT count(*) FROM deliveries WHERE state = 'sent'`) == apps &&
		len(s.smtp.CountByMessageID()) >= apps &&
		len(s.sink.Records()) >= apps
}

// relayResumedAfter is how long after t0 the relay first dispatched an
// event, by the database's clock, or -1.
func (s *system) relayResumedAfter(t *testing.T, t0 time.Time) time.Duration {
	t.Helper()
	rows, err := s.rows(`SELECT min(dispatched_at) FROM outbox_events WHERE dispatched_at >= $1`, t0)
	if err != nil {
		t.Fatalf("first dispatch: %v", err)
	}
	at, ok := rows[0][0].(time.Time)
	if !ok {
		return -1
	}
	return at.Sub(t0)
}

// listenerBackAfter waits until the relay's LISTEN session is connected
// again after t0 and returns how long after t0 it connected, or -1. The
// listener's connection is the worker's only one without an
// application_name; its last statement is its LISTEN, or the ping it sends
// when nothing was heard for a while.
func (s *system) listenerBackAfter(t *testing.T, t0 time.Time, timeout time.Duration) time.Duration {
	var since time.Duration = -1
	waitFor(timeout, func() bool {
		rows, err := s.rows(`SELECT backend_start FROM pg_stat_activity
			WHERE datname = 'intake' AND backend_start >= $1 AND application_name = ''
			  AND (query ILIKE 'LISTEN%intake_outbox%' OR query = '-- ping')
			ORDER BY backend_start LIMIT 1`, t0)
		if err != nil || len(rows) == 0 {
			return false
		}
		at, ok := rows[0][0].(time.Time)
		if !ok {
			return false
		}
		since = at.Sub(t0)
		return true
	})
	return since
}

// sessionsFrom counts, by state, the worker's server sessions that began
// before t0 and are still there: after a silent drop, the server never
// learns that their client is gone.
func (s *system) sessionsFrom(t *testing.T, t0 time.Time) map[string]int {
	t.Helper()
	rows := s.strings2(t, `SELECT coalesce(state, '?'), count(*)::text FROM pg_stat_activity
		WHERE datname = 'intake' AND pid <> pg_backend_pid() AND backend_start < $1
		  AND application_name NOT IN ('faultdrill', 'intake-api') GROUP BY 1`, t0)
	out := map[string]int{}
	for _, r := range rows {
		var n int
		fmt.Sscan(r[1], &n)
		out[r[0]] = n
	}
	return out
}

// verdict is what the drill found, checked independently of the code under
// test: SQL on the drill's own connection, and the SMTP and sink recorders.
type verdict struct {
	keysCreated       int      // keys that got a 201
	applications      int      // rows in applications
	extraApplications int      // applications no client key points at (a second application for a key)
	lostKeys          []string // keys with a 201 and no application, or the wrong one
	keyMismatch       []string // idempotency_keys disagreeing with what the client was told
	appsNoEvent       int
	eventsNoApp       int
	undispatched      int
	appsNoEmail       int
	appsNotSentLedger int
	eventsNoRecord    int
	badRecords        int // analytics records whose application id is not the event's
	unknownMessageIDs int // emails carrying a Message-ID no application has
	emailDuplicates   int // extra copies, each with an application's own Message-ID
	analyticsRepeats  int // extra calls to the sink for one event (deduplicated there)
	riverStuck        map[string]int
	unfinished        []string // keys still without a 201 when the clients stopped
	odd               []attempt
	replaysOnRetry    int
}

func (v verdict) lost() int {
	return len(v.lostKeys) + v.appsNoEvent + v.eventsNoApp + v.appsNoEmail + v.eventsNoRecord
}

func (s *system) verify(t *testing.T, l *load) verdict {
	t.Helper()
	_, created := l.snapshot()
	l.mu.Lock()
	v := verdict{keysCreated: len(created), unfinished: append([]string(nil), l.given...),
		odd: append([]attempt(nil), l.odd...), replaysOnRetry: l.replays, riverStuck: map[string]int{}}
	l.mu.Unlock()

	// Applications and their events, one to one (invariant 1).
	appEvent := map[string]string{}
	for _, r := range s.strings2(t, `SELECT a.id::text, e.id::text FROM applications a
		LEFT JOIN outbox_events e ON e.aggregate_id = a.id AND e.kind = 'application.submitted'`) {
		if _, seen := appEvent[r[0]]; seen {
			t.Errorf("application %s has more than one event", r[0])
		}
		appEvent[r[0]] = r[1]
		if r[1] == "" {
			v.appsNoEvent++
		}
	}
	v.applications = len(appEvent)
	v.eventsNoApp = s.count(t, `SELECT count(*) FROM outbox_events e
		WHERE NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = e.aggregate_id)`)
	v.undispatched = s.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`)

	// Every 201 points at its application; every application at a 201
	// (invariants 2 and 3).
	known := map[string]bool{}
	for key, id := range created {
		known[id] = true
		if _, ok := appEvent[id]; !ok {
			v.lostKeys = append(v.lostKeys, key)
		}
	}
	for id := range appEvent {
		if !known[id] {
			v.extraApplications++
		}
	}
	stored := map[string]string{}
	for _, r := range s.strings2(t, `SELECT key, application_id::text FROM idempotency_keys WHERE key LIKE $1`, l.prefix+"-%") {
		stored[r[0]] = r[1]
	}
	for key, id := range created {
		if stored[key] != id {
			v.keyMismatch = append(v.keyMismatch, fmt.Sprintf("%s: told %s, stored %q", key, id, stored[key]))
		}
	}

	// Confirmation emails (invariants 4 and 5).
	mails := s.smtp.CountByMessageID()
	expected := map[string]bool{}
	for app := range appEvent {
		expected[messageID(app)] = true
		switch n := mails[messageID(app)]; {
		case n == 0:
			v.appsNoEmail++
		case n > 1:
			v.emailDuplicates += n - 1
		}
	}
	for id, n := range mails {
		if !expected[id] {
			v.unknownMessageIDs += n
		}
	}
	v.appsNotSentLedger = s.count(t, `SELECT count(*) FROM applications a
		WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.application_id = a.id AND d.state = 'sent')`)

	// Analytics records (invariant 6).
	records := s.sink.Records()
	calls := s.sink.Calls()
	eventApp := map[string]string{}
	for app, ev := range appEvent {
		if ev != "" {
			eventApp[ev] = app
		}
	}
	for ev, app := range eventApp {
		body, ok := records[ev]
		if !ok {
			v.eventsNoRecord++
			continue
		}
		var rec struct {
			EventID       string `json:"event_id"`
			ApplicationID string `json:"application_id"`
		}
		if json.Unmarshal(body, &rec) != nil || rec.EventID != ev || rec.ApplicationID != app {
			v.badRecords++
		}
		v.analyticsRepeats += calls[ev] - 1
	}
	for ev := range records {
		if _, ok := eventApp[ev]; !ok {
			v.badRecords++
		}
	}

	// River: nothing left behind, nothing given up (a row a heartbeat
	// rescue replaced with a new one is history, not a job given up).
	for _, r := range s.strings2(t, `SELECT state::text, count(*)::text FROM river_job
		WHERE state <> 'completed' AND NOT metadata ? 'rescued_as' GROUP BY 1`) {
		var n int
		fmt.Sscan(r[1], &n)
		v.riverStuck[r[0]] = n
	}
	return v
}

// requireSound fails the test for every broken invariant.
func (v verdict) requireSound(t *testing.T, duplicateBound int) {
	t.Helper()
	check := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Errorf(format, args...)
		}
	}
	check(v.keysCreated > 0, "no application was created")
	check(len(v.unfinished) == 0, "%d keys never got their 201: %v", len(v.unfinished), first(v.unfinished, 5))
	check(len(v.odd) == 0, "%d answers a client could not retry, e.g. %+v", len(v.odd), firstAttempts(v.odd, 3))
	check(len(v.lostKeys) == 0, "%d keys got a 201 but have no application: %v", len(v.lostKeys), first(v.lostKeys, 5))
	check(v.applications == v.keysCreated, "%d applications for %d created keys", v.applications, v.keysCreated)
	check(v.extraApplications == 0, "%d applications no key points at", v.extraApplications)
	check(len(v.keyMismatch) == 0, "idempotency keys disagree with the responses: %v", first(v.keyMismatch, 5))
	check(v.appsNoEvent == 0, "%d applications without an event", v.appsNoEvent)
	check(v.eventsNoApp == 0, "%d events without an application", v.eventsNoApp)
	check(v.undispatched == 0, "%d events still undispatched", v.undispatched)
	check(v.appsNoEmail == 0, "%d applications without a confirmation email", v.appsNoEmail)
	check(v.appsNotSentLedger == 0, "%d applications whose ledger is not sent", v.appsNotSentLedger)
	check(v.eventsNoRecord == 0, "%d events without an analytics record", v.eventsNoRecord)
	check(v.badRecords == 0, "%d analytics records that match no event", v.badRecords)
	check(v.unknownMessageIDs == 0, "%d emails with a Message-ID no application has", v.unknownMessageIDs)
	check(v.emailDuplicates <= duplicateBound, "%d duplicate emails, more than the %d that were in flight at most", v.emailDuplicates, duplicateBound)
	check(len(v.riverStuck) == 0, "River jobs not completed: %v", v.riverStuck)
}

// replayCheck resubmits some keys (those that saw errors first) and
// requires the original 201 again, marked as a replay.
func replayCheck(t *testing.T, l *load, n int) int {
	t.Helper()
	_, created := l.snapshot()
	l.mu.Lock()
	var keys []string
	for k := range l.errored {
		if _, ok := created[k]; ok {
			keys = append(keys, k)
		}
	}
	l.mu.Unlock()
	sort.Strings(keys)
	for k := range created {
		if len(keys) >= n {
			break
		}
		if !l.errored[k] {
			keys = append(keys, k)
		}
	}
	keys = first(keys, n)
	l.mu.Lock()
	bodies := make(map[string]string, len(keys))
	for _, k := range keys {
		bodies[k] = l.bodies[k]
	}
	l.mu.Unlock()
	for _, k := range keys {
		a, id, replayed := l.do(k, bodies[k])
		if a.status != http.StatusCreated || id != created[k] || !replayed {
			t.Errorf("replay of %s: status %d id %s (want %s) replayed %v %s", k, a.status, id, created[k], replayed, a.err)
		}
	}
	return len(keys)
}

func first[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func firstAttempts(s []attempt, n int) []string {
	var out []string
	for _, a := range first(s, n) {
		out = append(out, fmt.Sprintf("%s→%d %s %s", a.key, a.status, a.problem, a.err))
	}
	return out
}

// row is one line of a drill's table.
type row struct {
	drill, load, faults string
	lost                int
	duplicates          string
	recovery            string
}

// report prints the drill's table and its details, to the test log and to
// stdout.
func report(t *testing.T, r row, details []string) {
	t.Helper()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "drill\tload\tfaults injected\tlost\tduplicates\tmax recovery time")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.drill, r.load, r.faults, r.lost, r.duplicates, r.recovery)
	_ = tw.Flush()
	for _, d := range details {
		b.WriteString("  " + d + "\n")
	}
	t.Log("\n" + b.String())
	fmt.Fprint(os.Stdout, "\n"+b.String())
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(10 * time.Millisecond).String()
}

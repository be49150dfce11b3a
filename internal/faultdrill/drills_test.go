//go:build drills

package faultdrill

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/intake/intake/internal/testkit"
)

// The load every drill runs: a few clients, each submitting one
// application after another with a short pause, like a busy form.
const (
	loadClients  = 6
	loadInterval = 120 * time.Millisecond
	warmEmails   = 100 // delivered before the fault, so it lands on a working system
)

// TestDrillPostgresRestart restarts Postgres under load: stop (fast), about
// 3 s down, start on the same port and data directory. The API answers 503
// with Retry-After promptly while it is down and 201 again soon after;
// the worker carries on without being restarted; nothing is lost.
func TestDrillPostgresRestart(t *testing.T) {
	s := startSystem(t, systemOpts{})
	apiProbe, workerProbe := startProbe(s.apiURL), startProbe(s.opsURL)
	l := startLoad(s.apiURL, "restart", loadClients, loadInterval)
	warm(t, s)

	inFlight := s.runningEmailJobs(t)
	tDown := time.Now()
	if err := s.cluster.Stop(); err != nil {
		t.Fatalf("%v", err)
	}
	stopTook := time.Since(tDown)
	time.Sleep(3 * time.Second) // the outage
	if err := s.cluster.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	tUp := time.Now()
	downFor := tUp.Sub(tDown)
	caughtUp := s.catchUp(tUp, 2*time.Minute)

	// The API takes applications again within 10 s.
	waitFor(10*time.Second, func() bool { return l.firstCreatedAfter(tUp) >= 0 })
	apiBack := l.firstCreatedAfter(tUp)
	time.Sleep(5 * time.Second) // load goes on after the recovery
	l.stop(30 * time.Second)
	backlog := <-caughtUp
	listenBack := s.listenerBackAfter(t, tUp, 20*time.Second)
	_, quiet := waitFor(2*time.Minute, func() bool { return s.quiescent(t) })
	apiReady, workerReady := apiProbe.finish(), workerProbe.finish()

	all := l.window(l.started, l.stopped)
	outage := l.window(tDown, tUp)
	lastFailure := max(l.lastFailureAfter(tUp), 0) // 0: not one failure after the restart
	relayBack := s.relayResumedAfter(t, tUp)
	replayed := replayCheck(t, l, 100)
	workerAlive := healthy(s.opsURL) // the ops address it bound at start: the same process
	v := s.verify(t, l)
	workerErr, apiErr := s.stopProcesses(t)

	recoveries := []recovery{
		{"API 201 again", apiBack},
		{"API last non-201 answer", lastFailure},
		{"API ready", readyAgain(apiReady, tUp)},
		{"worker ready", readyAgain(workerReady, tUp)},
		{"relay dispatching", relayBack},
		{"relay LISTEN reconnected", listenBack},
	}
	r := row{
		drill:      "postgres-restart",
		load:       loadDesc(l, v),
		faults:     fmt.Sprintf("1 restart: fast stop (%s) + %s down", stopTook.Round(10*time.Millisecond), downFor.Round(100*time.Millisecond)),
		lost:       v.lost(),
		duplicates: dupDesc(v, inFlight),
		recovery:   recoveryDesc(recoveries, backlog),
	}
	report(t, r, append(details(v, recoveries, backlog),
		"all requests: "+all.String(),
		"sent while Postgres was down: "+outage.String(),
		fmt.Sprintf("201s that were replays after an error: %d; %d keys resubmitted after the drill (errors below if any replay differed)", v.replaysOnRetry, replayed),
		fmt.Sprintf("readiness noticed the outage: API %v, worker %v", notReadyDuring(apiReady, tDown, tUp), notReadyDuring(workerReady, tDown, tUp)),
		fmt.Sprintf("worker: still the same process %v, exit after SIGTERM %v; API exit %v", workerAlive, workerErr, apiErr),
	))

	// The API during the outage: prompt 503s with Retry-After, no hangs.
	if all.max503Latency > requestTimeout+latencyMargin {
		t.Errorf("a 503 took %s, more than INTAKE_REQUEST_TIMEOUT %s + %s", all.max503Latency, requestTimeout, latencyMargin)
	}
	if outage.maxLatency > requestTimeout+latencyMargin {
		t.Errorf("a request during the outage took %s, more than INTAKE_REQUEST_TIMEOUT %s + %s", outage.maxLatency, requestTimeout, latencyMargin)
	}
	if outage.n503 == 0 {
		t.Errorf("no 503 while Postgres was down: %s", outage)
	}
	if all.no503Retry > 0 {
		t.Errorf("%d 503s without Retry-After", all.no503Retry)
	}
	if all.hangs > 0 || all.noAnswer > 0 {
		t.Errorf("%d requests without an answer (%d hung)", all.noAnswer, all.hangs)
	}
	for status, n := range outage.byStatus {
		if status != http.StatusCreated && status != http.StatusServiceUnavailable {
			t.Errorf("%d answers %d while Postgres was down", n, status)
		}
	}
	// Back to normal within 10 s.
	if apiBack < 0 || apiBack > 10*time.Second {
		t.Errorf("first 201 %s after Postgres was back, want within 10s", fmtDur(apiBack))
	}
	if lastFailure > 10*time.Second || l.stopped.Sub(tUp) < lastFailure+2*time.Second {
		t.Errorf("the last answer other than 201 came %s after Postgres was back (load ran %s after it), want within 10s",
			fmtDur(lastFailure), l.stopped.Sub(tUp).Round(time.Second))
	}
	// The worker resumed by itself.
	if listenBack < 0 {
		t.Errorf("the relay's LISTEN session did not come back")
	}
	if !workerAlive || workerErr != nil || apiErr != nil {
		t.Errorf("processes did not survive the drill: worker alive %v, worker exit %v, API exit %v", workerAlive, workerErr, apiErr)
	}
	if !quiet || backlog < 0 {
		t.Errorf("the system did not finish its work (quiescent %v, backlog delivered after %s)", quiet, fmtDur(backlog))
	}
	v.requireSound(t, emailConcurrency)
}

// TestDrillNetworkCut cuts the worker off from Postgres for 30 s through a
// proxy (every connection closed, new ones held) while the API, connected
// directly, keeps taking applications. When the network comes back the
// worker catches up by itself; nothing is lost; duplicate emails stay
// within what was in flight at the cut, each with the original Message-ID.
func TestDrillNetworkCut(t *testing.T) {
	cutDrill(t, "network-cut", testkit.Hold, 30*time.Second)
}

// TestDrillSilentDrop is the nastier partition: the worker's connections
// are not closed but go silently dead (every byte dropped, no reset, ever:
// a pooler or load balancer that lost its state), for 10 s, after which new
// connections work again. The worker must notice on its own and catch up.
//
// The drop lands while the relay is in the middle of a round, its claimed
// events locked: the drill holds a SHARE lock on deliveries until the relay
// waits on it, drops the connections, then lets go. The server finishes the
// statement and then waits, in the transaction, for a client that will
// never speak again.
func TestDrillSilentDrop(t *testing.T) {
	cutDrill(t, "silent-drop", testkit.Drop, 10*time.Second)
}

func cutDrill(t *testing.T, name string, mode testkit.CutMode, cutFor time.Duration) {
	s := startSystem(t, systemOpts{workerViaProxy: true})
	apiProbe, workerProbe := startProbe(s.apiURL), startProbe(s.opsURL)
	l := startLoad(s.apiURL, name, loadClients, loadInterval)
	warm(t, s)

	inFlight := s.runningEmailJobs(t)
	var letGo func()
	if mode == testkit.Drop {
		letGo = s.holdRelayMidRound(t)
	}
	tCut := time.Now()
	closed := s.proxy.Cut(mode)
	if letGo != nil {
		letGo()
	}
	time.Sleep(cutFor) // the partition
	backlogAtRestore := s.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`)
	tRestore := time.Now()
	s.proxy.Restore()
	caughtUp := s.catchUp(tRestore, 2*time.Minute)
	emailsAtRestore := len(s.smtp.Messages())
	firstEmail, _ := waitFor(20*time.Second, func() bool { return len(s.smtp.Messages()) > emailsAtRestore })

	time.Sleep(5 * time.Second) // load goes on after the recovery
	l.stop(30 * time.Second)
	backlog := <-caughtUp
	listenBack := s.listenerBackAfter(t, tRestore, 40*time.Second)
	_, quiet := waitFor(2*time.Minute, func() bool { return s.quiescent(t) })
	apiReady, workerReady := apiProbe.finish(), workerProbe.finish()

	all := l.window(l.started, l.stopped)
	during := l.window(tCut, tRestore)
	relayBack := s.relayResumedAfter(t, tRestore)
	replayed := replayCheck(t, l, 50)
	workerAlive := healthy(s.opsURL)
	stats := s.proxy.Stats()
	leftOver := s.sessionsFrom(t, tCut)
	v := s.verify(t, l)
	workerErr, apiErr := s.stopProcesses(t)

	recoveries := []recovery{
		{"worker ready", readyAgain(workerReady, tRestore)},
		{"relay dispatching", relayBack},
		{"first email", firstEmail},
		{"relay LISTEN reconnected", listenBack},
	}
	r := row{
		drill:      name,
		load:       loadDesc(l, v),
		faults:     cutDesc(mode, cutFor, closed, stats, letGo != nil),
		lost:       v.lost(),
		duplicates: dupDesc(v, inFlight),
		recovery:   recoveryDesc(recoveries, backlog),
	}
	report(t, r, append(details(v, recoveries, backlog),
		"all requests: "+all.String(),
		"sent during the cut (API connects directly): "+during.String(),
		fmt.Sprintf("events waiting in the outbox when the network came back: %d", backlogAtRestore),
		fmt.Sprintf("proxy: %+v", stats),
		fmt.Sprintf("worker sessions from before the cut still open on the server at the end: %v", leftOver),
		fmt.Sprintf("readiness during the cut: API stayed ready %v, worker noticed %v",
			!notReadyDuring(apiReady, tCut, tRestore), notReadyDuring(workerReady, tCut, tRestore)),
		fmt.Sprintf("201s that were replays after an error: %d; %d keys resubmitted after the drill (errors below if any replay differed)", v.replaysOnRetry, replayed),
		fmt.Sprintf("worker: still the same process %v, exit after SIGTERM %v; API exit %v", workerAlive, workerErr, apiErr),
	))

	if during.requests == 0 || during.byStatus[http.StatusCreated] != during.requests {
		t.Errorf("the API, which reaches Postgres directly, did not keep answering 201 during the cut: %s", during)
	}
	if all.hangs > 0 || all.noAnswer > 0 {
		t.Errorf("%d requests without an answer (%d hung)", all.noAnswer, all.hangs)
	}
	if n := leftOver["idle in transaction"]; n > 0 {
		t.Errorf("%d transactions of dead worker connections still open on the server, holding their locks", n)
	}
	if backlogAtRestore == 0 {
		t.Errorf("nothing waited in the outbox during the cut: the cut did not cut")
	}
	if listenBack < 0 {
		t.Errorf("the relay's LISTEN session did not come back")
	}
	if !workerAlive || workerErr != nil || apiErr != nil {
		t.Errorf("processes did not survive the drill: worker alive %v, worker exit %v, API exit %v", workerAlive, workerErr, apiErr)
	}
	if !quiet || backlog < 0 {
		t.Errorf("the system did not finish its work (quiescent %v, backlog delivered after %s)", quiet, fmtDur(backlog))
	}
	v.requireSound(t, emailConcurrency)
}

func cutDesc(mode testkit.CutMode, cutFor time.Duration, n int, stats testkit.ProxyStats, midRound bool) string {
	what := "closed"
	if mode == testkit.Drop {
		what = "silently dead for good"
	}
	if midRound {
		what += ", one of them mid relay round"
	}
	return fmt.Sprintf("worker↔Postgres %s %s (%d connections %s, %d new held)", mode, cutFor, n, what, stats.HeldDuringCut)
}

// warm waits until the system delivers email, so the fault lands on work
// in progress.
func warm(t *testing.T, s *system) {
	t.Helper()
	if _, ok := waitFor(time.Minute, func() bool { return len(s.smtp.Messages()) >= warmEmails }); !ok {
		t.Fatalf("only %d emails delivered before the fault, want %d", len(s.smtp.Messages()), warmEmails)
	}
}

type recovery struct {
	name string
	d    time.Duration // -1: never
}

// slowest is the longest recovery; one that never happened counts as the
// slowest of all.
func slowest(rs []recovery) recovery {
	worst := rs[0]
	for _, r := range rs[1:] {
		if worst.d >= 0 && (r.d < 0 || r.d > worst.d) {
			worst = r
		}
	}
	return worst
}

// recoveryDesc is the table's recovery column: the slowest sign of the
// system working again, then how long until everything received before the
// fault ended was delivered (bounded by throughput as much as by recovery).
func recoveryDesc(rs []recovery, backlog time.Duration) string {
	w := slowest(rs)
	return fmt.Sprintf("%s (%s); backlog delivered %s", fmtDur(w.d), w.name, fmtDur(backlog))
}

func loadDesc(l *load, v verdict) string {
	secs := l.stopped.Sub(l.started).Seconds()
	return fmt.Sprintf("%d clients, %d apps in %.0fs (%.0f/s)", l.clients, v.keysCreated, secs, float64(v.keysCreated)/secs)
}

func dupDesc(v verdict, inFlight int) string {
	return fmt.Sprintf("%d emails (bound %d; %d running at the fault), all with the original Message-ID: %v; %d repeated sink calls (deduplicated)",
		v.emailDuplicates, emailConcurrency, inFlight, v.unknownMessageIDs == 0, v.analyticsRepeats)
}

func details(v verdict, rs []recovery, backlog time.Duration) []string {
	var rec string
	for i, r := range rs {
		if i > 0 {
			rec += ", "
		}
		rec += r.name + " " + fmtDur(r.d)
	}
	return []string{
		"recovery after the fault ended: " + rec + "; everything received before it delivered (email and analytics) " + fmtDur(backlog),
		fmt.Sprintf("lost: keys without application %d, applications without event %d, events without application %d, without email %d, without analytics record %d",
			len(v.lostKeys), v.appsNoEvent, v.eventsNoApp, v.appsNoEmail, v.eventsNoRecord),
		fmt.Sprintf("applications %d for %d keys with a 201 (extra %d); idempotency mismatches %d; unfinished keys %d; unretryable answers %d",
			v.applications, v.keysCreated, v.extraApplications, len(v.keyMismatch), len(v.unfinished), len(v.odd)),
		fmt.Sprintf("ledger not sent %d; undispatched %d; River jobs not completed %v; bad analytics records %d",
			v.appsNotSentLedger, v.undispatched, v.riverStuck, v.badRecords),
	}
}

//go:build drills

package faultdrill

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// Drill timings: compressed so that a drill takes seconds, not hours.
const (
	requestTimeout   = 2 * time.Second
	emailConcurrency = 20 // the default
	postingSlug      = "drill-engineer"
	// A response to a request is late when it takes longer than the API's
	// own deadline plus this margin (scheduling, a busy 2-CPU machine).
	latencyMargin = time.Second
)

// system is one Intake deployment on a private cluster: the API and the
// worker as real processes, a recording SMTP server and an HTTP analytics
// sink, and a pool straight to the cluster for the drill's own checks.
type system struct {
	cluster *Cluster
	dbURL   string
	db      *pgxpool.Pool  // the drill's own connections, never through the proxy
	proxy   *testkit.Proxy // between the worker and Postgres, when asked for
	smtp    *testkit.SMTPServer
	sink    *testkit.Sink
	api     *testkit.Process
	worker  *testkit.Process
	apiURL  string
	opsURL  string
	env     map[string]string
}

type systemOpts struct {
	// workerViaProxy routes the worker's database connections (pool and
	// LISTEN) through a Proxy; the API always connects directly.
	workerViaProxy bool
}

func startSystem(t *testing.T, opts systemOpts) *system {
	t.Helper()
	ctx := context.Background()
	cluster := StartCluster(t)
	dbURL, err := cluster.CreateIntakeDB(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	db, err := postgres.NewPool(ctx, dbURL, &postgres.PoolOpts{MaxConns: 4, ApplicationName: "faultdrill"})
	if err != nil {
		t.Fatalf("drill pool: %v", err)
	}
	t.Cleanup(db.Close)
	if _, err := postgres.NewStore(db).CreatePosting(ctx, application.NewPosting{Slug: postingSlug, Title: "Drill engineer"}); err != nil {
		t.Fatalf("create posting: %v", err)
	}

	s := &system{cluster: cluster, dbURL: dbURL, db: db, smtp: testkit.StartSMTP(t), sink: testkit.StartSink(t)}
	// Slow enough that a fault lands with emails in flight.
	s.smtp.SetDelay(100 * time.Millisecond)
	s.env = map[string]string{
		"DATABASE_URL":               dbURL,
		"INTAKE_STATUS_SECRET":       testkit.StatusSecret,
		"INTAKE_HTTP_ADDR":           "127.0.0.1:0",
		"INTAKE_OPS_ADDR":            "127.0.0.1:0",
		"INTAKE_API_OPS_ADDR":        "127.0.0.1:0",
		"INTAKE_RELAY_POLL_INTERVAL": "200ms",
		"INTAKE_RETRY_BASE":          "50ms",
		"INTAKE_RETRY_MAX":           "1s",
		"INTAKE_JOB_TIMEOUT":         "2s",
		"INTAKE_SMTP_TIMEOUT":        "1s",
		"INTAKE_RESCUE_AFTER":        "3500ms",
		"INTAKE_RECORD_TIMEOUT":      "1s",
		"INTAKE_RATE_LIMIT":          "0",
		"INTAKE_REQUEST_TIMEOUT":     requestTimeout.String(),
		// Must stay under the request timeout (config refuses otherwise).
		"INTAKE_IDEMPOTENCY_WAIT":  "1s",
		"INTAKE_SHUTDOWN_TIMEOUT":  "10s",
		"INTAKE_EMAIL_CONCURRENCY": strconv.Itoa(emailConcurrency),
		"INTAKE_ANALYTICS_SINK":    "http",
		"INTAKE_ANALYTICS_URL":     s.sink.URL,
	}
	for k, v := range s.smtp.Env() {
		s.env[k] = v
	}

	apiEnv := clone(s.env)
	s.api = testkit.StartProcess(t, testkit.Binary(t, "intake-api"), apiEnv)
	s.apiURL = "http://" + s.api.WaitLog(t, "listening", 30*time.Second)["addr"].(string)

	workerEnv := clone(s.env)
	if opts.workerViaProxy {
		s.proxy = testkit.StartProxy(t, cluster.Addr())
		workerEnv["DATABASE_URL"] = fmt.Sprintf("postgres://postgres@%s/intake?sslmode=disable", s.proxy.Addr())
	}
	s.worker = testkit.StartProcess(t, testkit.Binary(t, "intake-worker"), workerEnv)
	s.opsURL = "http://" + s.worker.WaitLog(t, "ops listening", 30*time.Second)["addr"].(string)
	s.worker.WaitLog(t, "working", 30*time.Second)
	return s
}

// stopProcesses sends SIGTERM to both binaries and requires a clean exit:
// a process that died during the drill has already exited with an error,
// so this also proves that the worker survived the fault without a restart.
func (s *system) stopProcesses(t *testing.T) (workerErr, apiErr error) {
	t.Helper()
	// A binary still running 15 s after SIGTERM gets SIGQUIT, so its log
	// (printed when the test fails) ends with every goroutine's stack.
	terminate := func(p *testkit.Process, name string) error {
		stop := quitAfter(testkit.Binary(t, name), 15*time.Second)
		defer stop()
		return p.Terminate(t, 20*time.Second)
	}
	workerErr = terminate(s.worker, "intake-worker")
	apiErr = terminate(s.api, "intake-api")
	return workerErr, apiErr
}

// quitAfter sends SIGQUIT, after d, to every process running the
// executable at path (built for this test binary alone, in its own
// temporary directory, so these are this test's processes), unless stop
// is called first.
func quitAfter(path string, d time.Duration) (stop func()) {
	timer := time.AfterFunc(d, func() {
		exes, _ := filepath.Glob("/proc/[0-9]*/exe")
		for _, exe := range exes {
			if target, err := os.Readlink(exe); err != nil || target != path {
				continue
			}
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(exe)))
			if err == nil {
				_ = syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
	})
	return func() { timer.Stop() }
}

// healthy reports whether url/healthz answers 200.
func healthy(url string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// count runs a count query on the drill's own pool.
func (s *system) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	rows, err := s.rows(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	n, ok := rows[0][0].(int64)
	if !ok {
		t.Fatalf("%s: got %T, want a count", query, rows[0][0])
	}
	return int(n)
}

// runningEmailJobs is how many confirmation emails are being worked right
// now: the most that a fault at this moment can turn into duplicates.
func (s *system) runningEmailJobs(t *testing.T) int {
	return s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'running'`)
}

// probe polls url/readyz every 100 ms and keeps what it saw.
type probe struct {
	url     string
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

type sample struct {
	at     time.Time
	status int // 0: no answer
}

func startProbe(url string) *probe {
	p := &probe{url: url, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		c := &http.Client{Timeout: 3 * time.Second}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			status := 0
			if resp, err := c.Get(p.url + "/readyz"); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			p.samples = append(p.samples, sample{at: time.Now(), status: status})
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// finish stops the probe and returns its samples.
func (p *probe) finish() []sample {
	close(p.stop)
	<-p.done
	return p.samples
}

// readyAgain is how long after t0 the first 200 came, or -1.
func readyAgain(samples []sample, t0 time.Time) time.Duration {
	for _, s := range samples {
		if !s.at.Before(t0) && s.status == http.StatusOK {
			return s.at.Sub(t0)
		}
	}
	return -1
}

// notReadyDuring reports whether some sample between from and to was not
// 200: the probe noticed the fault.
func notReadyDuring(samples []sample, from, to time.Time) bool {
	for _, s := range samples {
		if !s.at.Before(from) && s.at.Before(to) && s.status != http.StatusOK {
			return true
		}
	}
	return false
}

// waitFor polls cond every 100 ms until it holds or timeout passes, and
// reports how long it took and whether it held.
func waitFor(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// holdRelayMidRound makes sure a fault lands in the middle of a relay
// round: it takes a SHARE lock on deliveries, which the round's DeliveryQueue
// insert waits for while the round's claimed events stay locked, and waits
// until the relay is stuck there. The returned func lets go of the lock.
func (s *system) holdRelayMidRound(t *testing.T) (letGo func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE deliveries IN SHARE MODE`); err != nil {
		t.Fatalf("lock deliveries: %v", err)
	}
	if _, ok := waitFor(10*time.Second, func() bool {
		return s.count(t, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'intake-worker' AND wait_event_type = 'Lock'
			  AND query LIKE '%name: DeliveryQueue%'`) > 0
	}); !ok {
		_ = tx.Rollback(ctx)
		t.Fatalf("the relay never reached DeliveryQueue")
	}
	return func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("release deliveries: %v", err)
		}
	}
}

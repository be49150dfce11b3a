//go:build drills

package drill

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// Slug is the posting every drill applies to.
const Slug = "drill-engineer"

// EmailConcurrency is INTAKE_EMAIL_CONCURRENCY in every drill: the most
// confirmation emails one worker has in flight, so the most duplicates one
// SIGKILL can cause.
const EmailConcurrency = 10

// compressedEnv is the configuration every process gets: production's
// behaviour with its timings compressed so that a drill takes seconds, not
// hours. The connection pools are kept small because the drills share one
// Postgres server (max_connections 100) with everything else.
func compressedEnv() map[string]string {
	return map[string]string{
		"INTAKE_STATUS_SECRET":         testkit.StatusSecret,
		"INTAKE_RELAY_POLL_INTERVAL":   "200ms",
		"INTAKE_RETRY_BASE":            "50ms",
		"INTAKE_RETRY_MAX":             "1s",
		"INTAKE_JOB_TIMEOUT":           "2s",
		"INTAKE_SMTP_TIMEOUT":          "1s",
		"INTAKE_RESCUE_AFTER":          "3500ms",
		"INTAKE_RECORD_TIMEOUT":        "1s",
		"INTAKE_RATE_LIMIT":            "0",
		"INTAKE_SHUTDOWN_TIMEOUT":      "10s",
		"INTAKE_EMAIL_CONCURRENCY":     strconv.Itoa(EmailConcurrency),
		"INTAKE_ANALYTICS_CONCURRENCY": "5",
		"INTAKE_DB_MAX_CONNS":          "8",
		"INTAKE_ANALYTICS_SINK":        "http",
	}
}

// ClusterOpts says what NewCluster starts.
type ClusterOpts struct {
	APIs, Workers int
	// WorkersStopped creates the worker slots without starting them; the
	// drill starts each with Start when it is ready for them.
	WorkersStopped bool
	// Env overrides compressedEnv for every process.
	Env map[string]string
	// SMTPDelay is how long the SMTP server takes to accept each message,
	// so that emails are in flight when a worker dies.
	SMTPDelay time.Duration
	// Seed inserts this many applications (with their events) before any
	// process starts: a backlog for the workers.
	Seed int
	// TrackAcceptTimes polls the SMTP server to stamp each Message-ID with
	// the moment it was first accepted (for latency measurements).
	TrackAcceptTimes bool
}

// Cluster is one fresh database with API and worker replicas over it, a
// recording SMTP server and a recording analytics sink.
type Cluster struct {
	t       *testing.T
	DBURL   string
	DB      *pgxpool.Pool // the drill's own pool, for checks only
	SMTP    *testkit.SMTPServer
	Mail    *MailRecorder
	Sink    *testkit.Sink
	APIs    []*Node
	Workers []*Node
	// Began is when the first process was started.
	Began time.Time

	env  map[string]string
	bins map[string]string
}

// Node is one replica slot. Restarting it starts a new process in the same
// slot; the API gets a new port each time (read from its "listening" log).
type Node struct {
	Name string
	kind string

	mu       sync.Mutex
	proc     *testkit.Process
	addr     string
	up       bool
	workerID string // the running worker's id, also its River client id (attempted_by)
}

// NewCluster builds both binaries (once per test binary), creates the
// database, the posting, the recorders, and starts the replicas.
func NewCluster(t *testing.T, opts ClusterOpts) *Cluster {
	t.Helper()
	bins := map[string]string{
		"api":    testkit.Binary(t, "intake-api"),
		"worker": testkit.Binary(t, "intake-worker"),
	}
	dbURL := testkit.NewDB(t)
	pool, err := postgres.NewPool(context.Background(), dbURL, &postgres.PoolOpts{MaxConns: 4, ApplicationName: "drill"})
	if err != nil {
		t.Fatalf("drill pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if _, err := postgres.NewStore(pool).CreatePosting(context.Background(),
		application.NewPosting{Slug: Slug, Title: "Drill engineer"}); err != nil {
		t.Fatalf("create posting: %v", err)
	}
	if opts.Seed > 0 {
		testkit.Seed(t, pool, Slug, opts.Seed)
	}

	smtpSrv := testkit.StartSMTP(t)
	smtpSrv.SetDelay(opts.SMTPDelay)
	sink := testkit.StartSink(t)
	c := &Cluster{
		t:     t,
		DBURL: dbURL,
		DB:    pool,
		SMTP:  smtpSrv,
		Mail:  newMailRecorder(t, smtpSrv, opts.TrackAcceptTimes),
		Sink:  sink,
		bins:  bins,
	}
	c.env = compressedEnv()
	c.env["DATABASE_URL"] = dbURL
	c.env["INTAKE_ANALYTICS_URL"] = sink.URL
	maps.Copy(c.env, smtpSrv.Env())
	maps.Copy(c.env, opts.Env)

	for i := range opts.Workers {
		c.Workers = append(c.Workers, &Node{Name: fmt.Sprintf("worker-%d", i), kind: "worker"})
	}
	for i := range opts.APIs {
		c.APIs = append(c.APIs, &Node{Name: fmt.Sprintf("api-%d", i), kind: "api"})
	}
	c.Began = time.Now()
	var start []*Node
	if !opts.WorkersStopped {
		start = append(start, c.Workers...)
	}
	for _, n := range append(start, c.APIs...) {
		c.Start(n)
	}
	return c
}

// Start starts a process in the node's slot and waits until it serves:
// "listening" for the API, "working" for the worker. It must be called from
// the test's goroutine.
func (c *Cluster) Start(n *Node) time.Duration {
	c.t.Helper()
	env := maps.Clone(c.env)
	readyMsg, addrMsg := "listening", "listening"
	if n.kind == "worker" {
		env["INTAKE_OPS_ADDR"] = "127.0.0.1:0"
		readyMsg, addrMsg = "working", "ops listening"
	} else {
		env["INTAKE_HTTP_ADDR"] = "127.0.0.1:0"
		env["INTAKE_API_OPS_ADDR"] = "127.0.0.1:0"
	}
	began := time.Now()
	p := testkit.StartProcess(c.t, c.bins[n.kind], env)
	line := p.WaitLog(c.t, addrMsg, 30*time.Second)
	ready := p.WaitLog(c.t, readyMsg, 30*time.Second)
	took := time.Since(began)
	addr, _ := line["addr"].(string)
	if addr == "" {
		c.t.Fatalf("%s: %q log line without addr: %v", n.Name, addrMsg, line)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.proc, n.addr, n.up = p, addr, true
	n.workerID, _ = ready["worker_id"].(string)
	return took
}

// WorkerID is the id of the worker process in the slot (the last one
// started): River records it in attempted_by for every job it ran.
func (n *Node) WorkerID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.workerID
}

// Kill sends SIGKILL and waits for the process to be gone.
func (c *Cluster) Kill(n *Node) {
	n.mu.Lock()
	p := n.proc
	n.up = false
	n.mu.Unlock()
	p.Kill()
}

// Terminate sends SIGTERM and waits for a clean exit (status 0) within
// the shutdown budget plus a margin.
func (c *Cluster) Terminate(n *Node) error {
	c.t.Helper()
	n.mu.Lock()
	p := n.proc
	n.up = false
	n.mu.Unlock()
	return p.Terminate(c.t, 20*time.Second)
}

// URL is the node's base URL (the API's HTTP address). A dead node keeps
// its last URL, so clients meet a refused connection, as behind a naive
// load balancer.
func (n *Node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "http://" + n.addr
}

// Up reports whether the node's process is meant to be running.
func (n *Node) Up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// APIURL rotates over the API replicas: i picks one.
func (c *Cluster) APIURL(i int) string {
	return c.APIs[i%len(c.APIs)].URL()
}

// MailRecorder sits in front of the test SMTP server's scripting hook: it
// counts every RCPT per address and what it was answered, applies the
// drill's policy, and (when asked) stamps each Message-ID with the moment
// the server first held it.
type MailRecorder struct {
	srv *testkit.SMTPServer

	mu      sync.Mutex
	policy  func(rcpt string) *smtp.SMTPError
	rcpts   map[string]int
	answers map[int]int
	seen    map[string]time.Time
	polled  int
}

func newMailRecorder(t *testing.T, srv *testkit.SMTPServer, track bool) *MailRecorder {
	m := &MailRecorder{srv: srv, rcpts: map[string]int{}, answers: map[int]int{}, seen: map[string]time.Time{}}
	srv.Refuse(m.rcpt)
	if track {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { m.track(ctx, 2*time.Millisecond) })
		t.Cleanup(func() { cancel(); wg.Wait() })
	}
	return m
}

// SetPolicy scripts the answer to each RCPT (nil accepts everything).
func (m *MailRecorder) SetPolicy(fn func(rcpt string) *smtp.SMTPError) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policy = fn
}

func (m *MailRecorder) rcpt(to string) *smtp.SMTPError {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rcpts[to]++
	var err *smtp.SMTPError
	if m.policy != nil {
		err = m.policy(to)
	}
	if err != nil {
		m.answers[err.Code]++
	} else {
		m.answers[250]++
	}
	return err
}

// RCPTs returns how many RCPT commands named addr.
func (m *MailRecorder) RCPTs(addr string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rcpts[addr]
}

// Answers returns how many RCPTs got each reply code.
func (m *MailRecorder) Answers() map[int]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.answers)
}

// track polls the server's accepted messages and stamps new Message-IDs.
// The stamp is late by at most the poll interval.
func (m *MailRecorder) track(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		msgs := m.srv.Messages()
		now := time.Now()
		m.mu.Lock()
		for _, msg := range msgs[m.polled:] {
			if _, ok := m.seen[msg.MessageID]; !ok {
				m.seen[msg.MessageID] = now
			}
		}
		m.polled = len(msgs)
		m.mu.Unlock()
	}
}

// AcceptedAt is when the Message-ID was first seen accepted.
func (m *MailRecorder) AcceptedAt(messageID string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.seen[messageID]
	return at, ok
}

// MessageID is the confirmation email's Message-ID for an application
// (SPEC invariant 5: deterministic, so every copy carries the same one).
func MessageID(applicationID string) string {
	return "confirmation." + applicationID + "@intake.localhost"
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// waitFor bounds every wait in these tests; nothing sleeps blindly.
const waitFor = 15 * time.Second

// publicURL is what status links are built on; the tests send the path and
// query of a link to the server they started.
const publicURL = "https://jobs.example.test"

// proc is one run of the real intake-api run function, as main calls it.
type proc struct {
	addr   string // where it listens, from its "listening" log line
	stdout *testkit.Buffer
	cancel context.CancelFunc // what SIGTERM does
	done   chan error         // run's result
	client *http.Client
}

// start runs intake-api with env (and nothing else) as its environment and
// waits until it listens.
func start(t *testing.T, env map[string]string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{stdout: &testkit.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(ctx, func(name string) string { return env[name] }, p.stdout) }()

	transport := &http.Transport{}
	p.client = &http.Client{Transport: transport, Timeout: waitFor}
	t.Cleanup(func() {
		// A test that failed half-way still stops the server.
		cancel()
		select {
		case <-p.done:
		case <-time.After(waitFor):
			t.Errorf("run did not return %s after its context was cancelled", waitFor)
		}
		transport.CloseIdleConnections()
	})

	deadline := time.Now().Add(waitFor)
	for p.addr == "" {
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			t.Fatalf("run returned before listening: %v\nlogs:\n%s", err, p.stdout)
		case <-time.After(5 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "no \"listening\" log line within %s; logs:\n%s", waitFor, p.stdout)
		if line := p.logLine(t, "listening"); line != nil {
			addr, ok := line["addr"].(string)
			require.True(t, ok, "listening line without an addr: %v", line)
			p.addr = addr
		}
	}
	return p
}

// logLines decodes every complete JSON line logged so far.
func (p *proc) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), "stdout carries JSON log lines only: %q", sc.Text())
		lines = append(lines, line)
	}
	return lines
}

// logLine returns the first line logged with msg, or nil.
func (p *proc) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	for _, line := range p.logLines(t) {
		if line["msg"] == msg {
			return line
		}
	}
	return nil
}

// stop cancels run's context, as SIGTERM does, and returns run's result.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	return p.wait(t)
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(waitFor):
		t.Fatalf("run did not return within %s; logs:\n%s", waitFor, p.stdout)
		return nil
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (p *proc) do(t *testing.T, method, target, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+target, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (p *proc) submit(t *testing.T, slug, key, body string) response {
	t.Helper()
	return p.do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", body,
		"Content-Type", "application/json", "Idempotency-Key", key)
}

func newPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.NewPool(context.Background(), dbURL, nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func createPosting(t *testing.T, pool *pgxpool.Pool, slug string) {
	t.Helper()
	_, err := postgres.NewStore(pool).CreatePosting(context.Background(),
		application.NewPosting{Slug: slug, Title: "Posting " + slug})
	require.NoError(t, err)
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

type submitBody struct {
	ID         string    `json:"id"`
	Job        string    `json:"job"`
	ReceivedAt time.Time `json:"received_at"`
	StatusURL  string    `json:"status_url"`
}

const (
	applicantEmail = "grace.hopper@example.com"
	applicantName  = "Grace Hopper"
)

var applicationJSON = `{"full_name":"` + applicantName + `","email":"` + applicantEmail + `","phone":"+1 555 0100","links":["https://example.com/grace"]}`

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	dbURL := testkit.NewDB(t)
	pool := newPool(t, dbURL)
	createPosting(t, pool, "compiler-engineer")

	p := start(t, map[string]string{
		"DATABASE_URL":         dbURL,
		"INTAKE_HTTP_ADDR":     "127.0.0.1:0",
		"INTAKE_API_OPS_ADDR":  "127.0.0.1:0",
		"INTAKE_PUBLIC_URL":    publicURL,
		"INTAKE_STATUS_SECRET": testkit.StatusSecret,
	})
	started := p.logLine(t, "starting")
	require.NotNil(t, started, "the configuration is logged at start")
	require.Equal(t, "intake-api", started["binary"])

	// Submit, as curl would.
	res := p.submit(t, "compiler-engineer", "e2e-key-1", applicationJSON)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.NotEmpty(t, res.header.Get("X-Request-Id"))
	var created submitBody
	require.NoError(t, json.Unmarshal(res.body, &created))
	require.NotEmpty(t, created.ID)
	require.Equal(t, "compiler-engineer", created.Job)
	require.WithinDuration(t, time.Now(), created.ReceivedAt, time.Minute)
	require.Equal(t, created.StatusURL, res.header.Get("Location"))
	require.True(t, strings.HasPrefix(created.StatusURL, publicURL+"/api/v1/applications/"+created.ID+"/status?token="),
		"status_url %q is built on INTAKE_PUBLIC_URL", created.StatusURL)

	// A retry with the same key replays the response; nothing new is stored.
	replay := p.submit(t, "compiler-engineer", "e2e-key-1", applicationJSON)
	require.Equal(t, http.StatusCreated, replay.status)
	require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(res.body), string(replay.body))
	require.Equal(t, 1, count(t, pool, "applications"))
	require.Equal(t, 1, count(t, pool, "outbox_events"))

	// The status link works.
	statusURL, err := url.Parse(created.StatusURL)
	require.NoError(t, err)
	st := p.do(t, http.MethodGet, statusURL.RequestURI(), "")
	require.Equal(t, http.StatusOK, st.status, "%s", st.body)
	require.NotEmpty(t, st.header.Get("X-Request-Id"))
	var status struct {
		ID                string `json:"id"`
		ConfirmationEmail struct {
			State string `json:"state"`
		} `json:"confirmation_email"`
	}
	require.NoError(t, json.Unmarshal(st.body, &status))
	require.Equal(t, created.ID, status.ID)
	require.Equal(t, "queued", status.ConfirmationEmail.State)

	// A wrong token is a 404, like an unknown id.
	wrong := p.do(t, http.MethodGet, statusURL.Path+"?token=not-the-token", "")
	require.Equal(t, http.StatusNotFound, wrong.status)
	require.NotEmpty(t, wrong.header.Get("X-Request-Id"), "errors carry a request id too")

	for _, path := range []string{"/healthz", "/readyz"} {
		res := p.do(t, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, res.status, "%s: %s", path, res.body)
		require.NotEmpty(t, res.header.Get("X-Request-Id"), path)
	}

	// SIGTERM: run returns nil and the port is closed.
	require.NoError(t, p.stop(t))
	require.NotNil(t, p.logLine(t, "shutting down"))
	require.NotNil(t, p.logLine(t, "stopped"))
	_, err = net.DialTimeout("tcp", p.addr, time.Second)
	require.Error(t, err, "nothing listens after run returned")

	// Invariant 8: no personal data in anything the process logged.
	logs := p.stdout.String()
	for _, pii := range []string{applicantEmail, applicantName, "Grace", "+1 555 0100", "example.com/grace"} {
		require.NotContains(t, logs, pii)
	}
	// Nor the status token, which is a capability, nor the secret it is
	// derived from.
	require.NotContains(t, logs, statusURL.Query().Get("token"))
	require.NotContains(t, logs, strings.TrimPrefix(testkit.StatusSecret, "hex:"))
	require.Equal(t, "xxxxx", started["config"].(map[string]any)["INTAKE_STATUS_SECRET"])
}

// Without a usable INTAKE_STATUS_SECRET no status link could be made or
// checked: the API does not start, and says which variable to fix.
func TestRunRefusesWithoutStatusSecret(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"missing":     "",
		"short":       "hex:" + strings.Repeat("ab", 31),
		"undecodable": "not a secret at all, just words",
	} {
		stdout := &testkit.Buffer{}
		env := map[string]string{
			"DATABASE_URL":         "postgres://postgres@127.0.0.1:1/never?sslmode=disable",
			"INTAKE_HTTP_ADDR":     "127.0.0.1:0",
			"INTAKE_API_OPS_ADDR":  "127.0.0.1:0",
			"INTAKE_STATUS_SECRET": value,
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		err := run(ctx, func(name string) string { return env[name] }, stdout)
		cancel()
		require.ErrorContains(t, err, "INTAKE_STATUS_SECRET ", name)
		require.Empty(t, stdout.String(), "%s: nothing started, nothing logged", name)
		if value != "" {
			require.NotContains(t, err.Error(), value, "%s: the secret is never echoed", name)
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	t.Parallel()
	// A port that nothing listens on: had run got as far as the database or
	// the listener, the error would be about them.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	stdout := &testkit.Buffer{}
	env := map[string]string{
		"DATABASE_URL":        "postgres://postgres@127.0.0.1:1/never?sslmode=disable",
		"INTAKE_HTTP_ADDR":    addr,
		"INTAKE_API_OPS_ADDR": "127.0.0.1:0",
		"INTAKE_SMTP_TLS":     "bogus",
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err = run(ctx, func(name string) string { return env[name] }, stdout)
	require.ErrorContains(t, err, "INTAKE_SMTP_TLS")
	require.ErrorContains(t, err, "bogus")
	require.Empty(t, stdout.String(), "nothing started, nothing logged")
	_, dialErr := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, dialErr, "nothing listens")
}

func TestRunFinishesInFlightRequestOnShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testkit.NewDB(t)
	pool := newPool(t, dbURL)
	createPosting(t, pool, "slow")

	p := start(t, map[string]string{
		"DATABASE_URL":            dbURL,
		"INTAKE_HTTP_ADDR":        "127.0.0.1:0",
		"INTAKE_API_OPS_ADDR":     "127.0.0.1:0",
		"INTAKE_PUBLIC_URL":       publicURL,
		"INTAKE_STATUS_SECRET":    testkit.StatusSecret,
		"INTAKE_IDEMPOTENCY_WAIT": "1m", // the request waits on our lock as long as it takes
		"INTAKE_REQUEST_TIMEOUT":  "2m",
		"INTAKE_SHUTDOWN_TIMEOUT": "2m",
	})

	// Hold the idempotency key from a transaction of our own, as a first
	// request still running would: the request below waits for it.
	const key = "slow-request"
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)
		VALUES ($1, $2, 'processing', now() + interval '48 hours')`, key, make([]byte, 32))
	require.NoError(t, err)

	result := make(chan response, 1)
	go func() {
		// Not p.do: require must not be called off the test goroutine.
		req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/api/v1/jobs/slow/applications", strings.NewReader(applicationJSON))
		if err != nil {
			result <- response{status: -1, body: []byte(err.Error())}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := p.client.Do(req)
		if err != nil {
			result <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()

	// The request is in flight once intake-api's connection waits on our
	// lock.
	require.Eventually(t, func() bool {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'intake-api' AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting == 1
	}, waitFor, 5*time.Millisecond, "the request never waited on the idempotency key")

	// SIGTERM while it waits.
	p.cancel()
	require.Eventually(t, func() bool {
		// Runs off the test goroutine: a plain search, no require inside.
		return strings.Contains(p.stdout.String(), `"msg":"shutting down"`)
	}, waitFor, 5*time.Millisecond)
	// The listener closes first: new connections are refused...
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	}, waitFor, 5*time.Millisecond, "still accepting connections during shutdown")
	// ...but run waits for the request in flight.
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		t.Fatalf("run returned (%v) while a request was in flight", err)
	case res := <-result:
		t.Fatalf("the request finished (%d %s) while the key was still held", res.status, res.body)
	default:
	}

	// Release the key: the request claims it, completes, and is answered.
	require.NoError(t, tx.Rollback(ctx))
	var res response
	select {
	case res = <-result:
	case <-time.After(waitFor):
		t.Fatalf("the in-flight request did not finish after the lock was released; logs:\n%s", p.stdout)
	}
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.NotEmpty(t, res.header.Get("X-Request-Id"))
	require.NotEmpty(t, res.header.Get("Location"))

	require.NoError(t, p.wait(t), "graceful shutdown returns nil")
	require.NotNil(t, p.logLine(t, "stopped"))
	require.Equal(t, 1, count(t, pool, "applications"))
	require.Equal(t, 1, count(t, pool, "outbox_events"))
	var state string
	require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM idempotency_keys WHERE key = $1", key).Scan(&state))
	require.Equal(t, "completed", state)
}

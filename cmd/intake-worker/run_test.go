package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/testkit"
)

// worker is intake-worker's real run function, running in this process.
type worker struct {
	logs    *testkit.Buffer
	cancel  context.CancelFunc
	done    chan error
	opsAddr string
}

// startWorker runs the worker against dbURL with fast timings for tests;
// env overrides any variable.
func startWorker(t *testing.T, dbURL string, smtpSrv *testkit.SMTPServer, env map[string]string) *worker {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":               dbURL,
		"INTAKE_STATUS_SECRET":       testkit.StatusSecret,
		"INTAKE_OPS_ADDR":            "127.0.0.1:0",
		"INTAKE_LOG_LEVEL":           "debug",
		"INTAKE_RELAY_POLL_INTERVAL": "200ms",
		"INTAKE_RETRY_BASE":          "20ms",
		"INTAKE_RETRY_MAX":           "200ms",
		"INTAKE_RETRY_FOR":           "1h",
		"INTAKE_SMTP_TIMEOUT":        "2s",
		"INTAKE_SHUTDOWN_TIMEOUT":    "5s",
	}
	for k, v := range smtpSrv.Env() {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{logs: &testkit.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- run(ctx, func(k string) string { return vars[k] }, w.logs) }()
	t.Cleanup(func() { w.stop(t) })
	w.opsAddr = w.waitLog(t, "ops listening")["addr"].(string)
	w.waitLog(t, "working")
	return w
}

func (w *worker) stop(t *testing.T) {
	t.Helper()
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	select {
	case err := <-w.done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("worker did not stop:\n%s", w.logs)
	}
	if t.Failed() {
		t.Logf("worker logs:\n%s", w.logs)
	}
}

func (w *worker) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(w.logs.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
				return line
			}
		}
		select {
		case err := <-w.done:
			t.Fatalf("worker exited early (%v):\n%s", err, w.logs)
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q in worker logs:\n%s", msg, w.logs)
	return nil
}

type submitted struct {
	ID        string `json:"id"`
	StatusURL string `json:"status_url"`
}

func submit(t *testing.T, api *testkit.API, slug, email string) submitted {
	t.Helper()
	res := api.Submit(t, slug, "key-"+email, fmt.Sprintf(`{"full_name":"Ada Lovelace","email":%q}`, email))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var s submitted
	require.NoError(t, json.Unmarshal(res.Body, &s))
	return s
}

type emailStatus struct {
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
}

func status(t *testing.T, api *testkit.API, s submitted) emailStatus {
	t.Helper()
	res := api.Do(t, http.MethodGet, strings.TrimPrefix(s.StatusURL, api.Config.PublicURL.String()), "")
	require.Equal(t, http.StatusOK, res.Status)
	var body struct {
		ConfirmationEmail emailStatus `json:"confirmation_email"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &body))
	return body.ConfirmationEmail
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ledger(t *testing.T, api *testkit.API, id string) (state string, attempts int) {
	t.Helper()
	err := api.Pool.QueryRow(context.Background(),
		`SELECT state, attempts FROM deliveries WHERE application_id = $1`, id).Scan(&state, &attempts)
	if err == pgx.ErrNoRows {
		return "", 0
	}
	require.NoError(t, err)
	return state, attempts
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	slug := api.CreatePosting(t, "go-engineer")
	w := startWorker(t, api.DBURL, mailSrv, nil)

	app := submit(t, api, slug, "ada@example.com")

	msgs := mailSrv.WaitMessages(t, 1, 10*time.Second)
	waitFor(t, 5*time.Second, "the ledger to say sent", func() bool { s, _ := ledger(t, api, app.ID); return s == "sent" })
	m := msgs[0]
	require.Equal(t, "confirmation."+app.ID+"@intake.localhost", m.MessageID)
	require.Equal(t, "no-reply@intake.localhost", m.From)
	require.Equal(t, []string{"ada@example.com"}, m.To)
	require.Contains(t, m.Parsed.Header.Get("To"), "ada@example.com")
	require.Equal(t, "We received your application: Posting go-engineer", m.Parsed.Header.Get("Subject"))
	parts := m.Parts(t)
	require.Contains(t, parts["text/plain"], "Hello Ada Lovelace,")
	require.Contains(t, parts["text/plain"], app.ID)
	require.Contains(t, parts["text/html"], "<strong>Posting go-engineer</strong>")

	var records int
	require.NoError(t, api.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM analytics_events WHERE application_id = $1`, app.ID).Scan(&records))
	require.Equal(t, 1, records)
	st := status(t, api, app)
	require.Equal(t, "sent", st.State)
	require.Equal(t, 1, st.Attempts)
	require.NotNil(t, st.LastAttemptAt)

	// The Postgres sink's record was written by the relay: the email is
	// the only job.
	waitFor(t, 5*time.Second, "the email job completed", func() bool {
		var n int
		require.NoError(t, api.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE state = 'completed' AND kind = 'confirmation_email'`).Scan(&n))
		return n == 1
	})
	var analyticsJobs int
	require.NoError(t, api.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'analytics_event'`).Scan(&analyticsJobs))
	require.Zero(t, analyticsJobs, "an analytics job beside the relay's record")
	require.Len(t, mailSrv.Messages(), 1, "exactly one message")

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + w.opsAddr + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	for _, pii := range []string{"ada@example.com", "Ada Lovelace"} {
		require.NotContains(t, w.logs.String(), pii)
	}
}

var statusLink = regexp.MustCompile(`https?://[^\s"<>]+/applications/[0-9a-f-]{36}\?token=[^\s"<>]+`)

// The confirmation email links to the applicant's status page, with the
// same token the API handed out in status_url: API and worker derive it
// alike, since it is stored nowhere.
func TestConfirmationEmailLinksToStatusPage(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, nil)

	app := submit(t, api, slug, "ada@example.com")
	parts := mailSrv.WaitMessages(t, 1, 10*time.Second)[0].Parts(t)
	waitFor(t, 5*time.Second, "the ledger to say sent", func() bool { s, _ := ledger(t, api, app.ID); return s == "sent" })

	textLink := statusLink.FindString(parts["text/plain"])
	require.NotEmpty(t, textLink, "no status link in the text part:\n%s", parts["text/plain"])
	require.Equal(t, []string{textLink}, statusLink.FindAllString(parts["text/html"], -1),
		"the HTML part links to the same page:\n%s", parts["text/html"])
	require.Contains(t, parts["text/html"], `href="`+textLink+`"`)

	link, err := url.Parse(textLink)
	require.NoError(t, err)
	require.Equal(t, api.Config.PublicURL.String()+"/applications/"+app.ID, link.Scheme+"://"+link.Host+link.Path,
		"the link is built on INTAKE_PUBLIC_URL")
	apiLink, err := url.Parse(app.StatusURL)
	require.NoError(t, err)
	require.Equal(t, apiLink.Query().Get("token"), link.Query().Get("token"), "the email's token is the one in status_url")

	page := api.Do(t, http.MethodGet, link.RequestURI(), "")
	require.Equal(t, http.StatusOK, page.Status, "%s", page.Body)
	require.Contains(t, string(page.Body), "Application received")
	require.Contains(t, string(page.Body), "Your confirmation email was sent.")

	tampered := api.Do(t, http.MethodGet, link.Path+"?token="+strings.ToLower(link.Query().Get("token")), "")
	require.Equal(t, http.StatusNotFound, tampered.Status)
}

// The worker cannot write a confirmation email's link without the secret:
// it does not start, and names the variable.
func TestRunRefusesWithoutStatusSecret(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"missing":     "",
		"short":       "base64:" + strings.Repeat("A", 40),
		"undecodable": "hex:not-hex-at-all-and-long-enough-to-be-a-secret-otherwise",
	} {
		logs := &testkit.Buffer{}
		env := map[string]string{
			"DATABASE_URL":         "postgres://postgres@127.0.0.1:1/never?sslmode=disable",
			"INTAKE_OPS_ADDR":      "127.0.0.1:0",
			"INTAKE_STATUS_SECRET": value,
		}
		err := run(t.Context(), func(k string) string { return env[k] }, logs)
		require.ErrorContains(t, err, "INTAKE_STATUS_SECRET ", name)
		require.Empty(t, logs.String(), "%s: nothing started, nothing logged", name)
	}
}

func TestTemporaryFailuresThenAccepted(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	var refusals atomic.Int32
	mailSrv.Refuse(func(string) *smtp.SMTPError {
		if refusals.Add(1) <= 3 {
			return testkit.TempFailure()
		}
		return nil
	})
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, nil)

	app := submit(t, api, slug, "ada@example.com")

	mailSrv.WaitMessages(t, 1, 15*time.Second)
	waitFor(t, 5*time.Second, "the ledger to say sent", func() bool { s, _ := ledger(t, api, app.ID); return s == "sent" })
	state, attempts := ledger(t, api, app.ID)
	require.Equal(t, "sent", state)
	require.Equal(t, 4, attempts)
	require.Len(t, mailSrv.Messages(), 1)
}

func TestRetryingShowsOnStatusPage(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	mailSrv.Refuse(func(string) *smtp.SMTPError { return testkit.TempFailure() })
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, map[string]string{"INTAKE_RETRY_BASE": "200ms", "INTAKE_RETRY_MAX": "200ms"})

	app := submit(t, api, slug, "ada@example.com")

	waitFor(t, 10*time.Second, "two failed attempts", func() bool {
		s, n := ledger(t, api, app.ID)
		return s == "retrying" && n >= 2
	})
	st := status(t, api, app)
	require.Equal(t, "retrying", st.State)
	require.GreaterOrEqual(t, st.Attempts, 2)

	mailSrv.Refuse(nil)
	mailSrv.WaitMessages(t, 1, 10*time.Second)
	waitFor(t, 5*time.Second, "sent", func() bool { return status(t, api, app).State == "sent" })
}

func TestPermanentFailureIsNotRetried(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	var rcpts atomic.Int32
	mailSrv.Refuse(func(string) *smtp.SMTPError { rcpts.Add(1); return testkit.PermFailure() })
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, nil)

	app := submit(t, api, slug, "ada@example.com")

	waitFor(t, 10*time.Second, "the email job to be cancelled", func() bool {
		var state string
		err := api.Pool.QueryRow(context.Background(),
			`SELECT state FROM river_job WHERE kind = 'confirmation_email'`).Scan(&state)
		return err == nil && state == "cancelled"
	})
	state, attempts := ledger(t, api, app.ID)
	require.Equal(t, "failed", state)
	require.Equal(t, 1, attempts)
	require.Equal(t, int32(1), rcpts.Load(), "no retry after a 5xx")
	st := status(t, api, app)
	require.Equal(t, "failed", st.State)
	var class string
	var code int
	require.NoError(t, api.Pool.QueryRow(context.Background(),
		`SELECT last_error_class, last_smtp_code FROM deliveries WHERE application_id = $1`, app.ID).Scan(&class, &code))
	require.Equal(t, "permanent", class)
	require.Equal(t, 550, code)
	require.Empty(t, mailSrv.Messages())
}

func TestSMTPServerDownThenUp(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	mailSrv.Stop()
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, nil)

	app := submit(t, api, slug, "ada@example.com")
	waitFor(t, 10*time.Second, "a refused connection to be recorded", func() bool {
		s, n := ledger(t, api, app.ID)
		return s == "retrying" && n >= 1
	})

	mailSrv.Start()

	msgs := mailSrv.WaitMessages(t, 1, 15*time.Second)
	require.Equal(t, "confirmation."+app.ID+"@intake.localhost", msgs[0].MessageID)
	waitFor(t, 5*time.Second, "sent", func() bool { s, _ := ledger(t, api, app.ID); return s == "sent" })
}

func TestAnalyticsSinkOutageDoesNotDelayEmail(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	sink := testkit.StartSink(t)
	sink.SetDown(true)
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, map[string]string{
		"INTAKE_ANALYTICS_SINK": "http",
		"INTAKE_ANALYTICS_URL":  sink.URL,
	})

	const n = 5
	for i := range n {
		submit(t, api, slug, fmt.Sprintf("ada%d@example.com", i))
	}

	// Every email goes out while the sink is down.
	mailSrv.WaitMessages(t, n, 10*time.Second)
	waitFor(t, 5*time.Second, "analytics jobs failing", func() bool {
		var failing int
		require.NoError(t, api.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE kind = 'analytics_event' AND attempt >= 2 AND state <> 'completed'`).Scan(&failing))
		return failing == n
	})
	require.Empty(t, sink.Records())

	sink.SetDown(false)

	waitFor(t, 10*time.Second, "every event recorded", func() bool { return len(sink.Records()) == n })
	var events []string
	rows, err := api.Pool.Query(context.Background(), `SELECT id::text FROM outbox_events`)
	require.NoError(t, err)
	events, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	records := sink.Records()
	for _, id := range events {
		require.Contains(t, records, id)
	}
	require.Len(t, mailSrv.Messages(), n)
}

// A job that runs again after it succeeded — a rescue, a reconciler — must
// be a no-op: no second email, no second analytics record. The analytics
// job here is one an older worker's relay inserted (the relay records the
// Postgres sink's record itself now): it finds the record there.
func TestJobsRunTwiceAreNoOps(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	slug := api.CreatePosting(t, "go-engineer")
	startWorker(t, api.DBURL, mailSrv, nil)
	app := submit(t, api, slug, "ada@example.com")
	mailSrv.WaitMessages(t, 1, 10*time.Second)
	waitFor(t, 5*time.Second, "the email job completed", func() bool {
		var n int
		require.NoError(t, api.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE state = 'completed' AND kind = 'confirmation_email'`).Scan(&n))
		return n == 1
	})

	// Insert the email job again, as a rescue or a re-enqueue would, and an
	// analytics job for the same event.
	var ev struct {
		ID         string
		OccurredAt time.Time
	}
	require.NoError(t, api.Pool.QueryRow(context.Background(),
		`SELECT id::text, created_at FROM outbox_events`).Scan(&ev.ID, &ev.OccurredAt))
	inserter, err := river.NewClient(riverpgxv5.New(api.Pool), &river.Config{})
	require.NoError(t, err)
	_, err = inserter.InsertMany(context.Background(), []river.InsertManyParams{
		{Args: job.ConfirmationEmailArgs{ApplicationID: app.ID}},
		{Args: job.AnalyticsEventArgs{EventID: ev.ID, EventKind: "application.submitted", ApplicationID: app.ID, PostingSlug: slug, OccurredAt: ev.OccurredAt}},
	})
	require.NoError(t, err)

	waitFor(t, 10*time.Second, "the repeated jobs completed", func() bool {
		var n int
		require.NoError(t, api.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE state = 'completed' AND kind IN ('confirmation_email', 'analytics_event')`).Scan(&n))
		return n == 3
	})
	require.Len(t, mailSrv.Messages(), 1)
	var records, attempts int
	require.NoError(t, api.Pool.QueryRow(context.Background(), `SELECT count(*) FROM analytics_events`).Scan(&records))
	require.Equal(t, 1, records)
	_, attempts = ledger(t, api, app.ID)
	require.Equal(t, 1, attempts, "the second run did not even try")
}

// An application that no longer exists when its job runs (erased) is not
// mailed: the job is cancelled, not retried.
func TestMissingApplicationIsNotMailed(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	startWorker(t, api.DBURL, mailSrv, nil)
	inserter, err := river.NewClient(riverpgxv5.New(api.Pool), &river.Config{})
	require.NoError(t, err)

	_, err = inserter.Insert(context.Background(), job.ConfirmationEmailArgs{ApplicationID: "01900000-0000-7000-8000-000000000000"}, nil)
	require.NoError(t, err)

	waitFor(t, 10*time.Second, "the job to be cancelled", func() bool {
		var state string
		err := api.Pool.QueryRow(context.Background(), `SELECT state FROM river_job WHERE kind = 'confirmation_email'`).Scan(&state)
		return err == nil && state == "cancelled"
	})
	require.Empty(t, mailSrv.Messages())
}

// A running worker reports in worker_heartbeats (intakectl status reads
// it) and removes its row when it stops cleanly.
func TestWorkerHeartbeat(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	w := startWorker(t, api.DBURL, testkit.StartSMTP(t), nil)

	waitFor(t, 5*time.Second, "a heartbeat", func() bool { return api.Count(t, "worker_heartbeats") == 1 })
	var pid int
	require.NoError(t, api.Pool.QueryRow(context.Background(), `SELECT pid FROM worker_heartbeats`).Scan(&pid))
	require.Equal(t, os.Getpid(), pid)

	w.stop(t)
	require.Zero(t, api.Count(t, "worker_heartbeats"))
}

// A poison event (its payload corrupted before the relay saw it) is
// quarantined and the other applications get their emails; the worker
// stays ready and its /readyz names the quarantined event.
func TestPoisonEventIsQuarantined(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	slug := api.CreatePosting(t, "go-engineer")
	apps := []submitted{
		submit(t, api, slug, "first@example.com"),
		submit(t, api, slug, "second@example.com"),
		submit(t, api, slug, "third@example.com"),
	}
	var poisoned string
	require.NoError(t, api.Pool.QueryRow(context.Background(),
		`UPDATE outbox_events SET payload = '{"posting_slug": 5}' WHERE aggregate_id = $1 RETURNING id::text`, apps[0].ID).Scan(&poisoned))

	w := startWorker(t, api.DBURL, mailSrv, nil)
	msgs := mailSrv.WaitMessages(t, 2, 10*time.Second)
	require.ElementsMatch(t, []string{"second@example.com", "third@example.com"}, []string{msgs[0].To[0], msgs[1].To[0]})
	line := w.waitLog(t, "outbox event quarantined")
	require.Equal(t, poisoned, line["event_id"])
	require.Equal(t, "payload: json: cannot unmarshal number into posting_slug", line["error"])

	resp, err := http.Get("http://" + w.opsAddr + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, 1.0, body["outbox_quarantined"])
	require.Contains(t, body["warning"], "1 outbox events quarantined")
	state, _ := ledger(t, api, apps[0].ID)
	require.Empty(t, state, "a ledger row for the quarantined event's application")
	require.Len(t, mailSrv.Messages(), 2)
	require.NotContains(t, w.logs.String(), "first@example.com")
}

package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is a peer over a fresh database with one open posting, served
// over HTTP.
type bundle struct {
	pool *pgxpool.Pool
	url  string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool, _ := testkit.NewPool(t)
	_, err := postgres.NewStore(pool).CreatePosting(t.Context(), application.NewPosting{Slug: "engineer", Title: "Engineer"})
	require.NoError(t, err)
	// The peer writes no outbox event, so it runs, as in the harness,
	// without the database's check that every application has one.
	_, err = pool.Exec(t.Context(), "ALTER TABLE applications DISABLE TRIGGER applications_have_event")
	require.NoError(t, err)
	p, err := newPeer(testkit.DefaultConfig(t), pool, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(p.routes())
	t.Cleanup(srv.Close)
	return &bundle{pool: pool, url: srv.URL + "/api/v1/jobs/engineer/applications"}
}

func (b *bundle) post(t *testing.T, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func (b *bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

const ada = `{"full_name":"Ada Lovelace","email":" Ada@Example.com ","links":["https://example.com/ada"]}`

// The peer's submit commits what Intake's submit and relay commit between
// them, minus the event and the ledger row: the application, the completed
// key, the relay's email job (job.ForEventWithoutAnalytics) with its queue
// and attempts, and the analytics record the relay writes in its round;
// and it answers as the API does.
func TestSubmitInsertsTheRelaysWork(t *testing.T) {
	t.Parallel()
	b := setup(t)

	res := b.post(t, "key-1", ada)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	var body struct {
		ID         string `json:"id"`
		Job        string `json:"job"`
		ReceivedAt string `json:"received_at"`
		StatusURL  string `json:"status_url"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, "engineer", body.Job)
	require.NotEmpty(t, body.ReceivedAt)
	require.Contains(t, body.StatusURL, "/api/v1/applications/"+body.ID+"/status?token=")
	require.Equal(t, body.StatusURL, res.Header.Get("Location"))

	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM applications WHERE id = $1 AND email_normalized = 'ada@example.com'", body.ID))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM idempotency_keys WHERE key = 'key-1' AND state = 'completed' AND application_id = $1", body.ID))
	require.Zero(t, b.count(t, "SELECT count(*) FROM outbox_events"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM deliveries"), "the email job opens the ledger row itself")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM analytics_events WHERE application_id = $1
		AND kind = 'application.submitted' AND posting_slug = 'engineer'`, body.ID))

	maxAttempts := job.RetryFromConfig(testkit.DefaultConfig(t)).MaxAttempts()
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND queue = $1
		AND state = 'available' AND max_attempts = $2 AND args->>'application_id' = $3`, job.QueueEmail, maxAttempts, body.ID))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river_job"), "no analytics job: the record is written")
}

// What Intake refuses the peer refuses, with the same validation, and it
// stores nothing for it: no application, no key, no job.
func TestSubmitRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, http.StatusCreated, b.post(t, "key-1", ada).StatusCode)

	for name, tc := range map[string]struct {
		key, body string
		status    int
	}{
		"invalid email":       {"key-2", `{"full_name":"Ada","email":"not an address"}`, http.StatusUnprocessableEntity},
		"control character":   {"key-3", `{"full_name":"Ada\u0007","email":"ada2@example.com"}`, http.StatusUnprocessableEntity},
		"unknown field":       {"key-4", `{"full_name":"Ada","email":"ada3@example.com","age":3}`, http.StatusBadRequest},
		"malformed key":       {"", ada, http.StatusBadRequest},
		"key used":            {"key-1", `{"full_name":"Ada","email":"ada4@example.com"}`, http.StatusConflict},
		"same email, new key": {"key-5", ada, http.StatusConflict},
	} {
		require.Equal(t, tc.status, b.post(t, tc.key, tc.body).StatusCode, name)
	}
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM applications"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM idempotency_keys"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river_job"))
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/statustoken"
	"github.com/intake/intake/internal/testkit"
)

const validBody = `{"full_name":"Ada Lovelace","email":"ada@example.com","phone":"+44 20 7946 0000","cover_letter":"I like engines.","links":["https://example.com/ada"]}`

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

type receipt struct {
	ID         string    `json:"id"`
	Job        string    `json:"job"`
	ReceivedAt time.Time `json:"received_at"`
	StatusURL  string    `json:"status_url"`
}

// requireProblem checks a problem+json answer and returns it decoded.
func requireProblem(t *testing.T, res testkit.Response, status int, typ string) problemBody {
	t.Helper()
	require.Equal(t, status, res.Status, "body: %s", res.Body)
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	require.NotEmpty(t, res.Header.Get("X-Request-Id"))
	var p problemBody
	require.NoError(t, json.Unmarshal(res.Body, &p))
	require.Equal(t, typ, p.Type)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Title)
	return p
}

func TestSubmitCreated(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	res := api.Submit(t, slug, "key-1", validBody)

	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	require.NotEmpty(t, res.Header.Get("X-Request-Id"))
	require.Empty(t, res.Header.Get("Idempotent-Replayed"))
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	require.Equal(t, slug, r.Job)
	require.WithinDuration(t, time.Now(), r.ReceivedAt, time.Minute)
	require.Equal(t, r.StatusURL, res.Header.Get("Location"))
	require.True(t, strings.HasPrefix(r.StatusURL, api.Config.PublicURL.String()+"/api/v1/applications/"+r.ID+"/status?token="), r.StatusURL)
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "outbox_events"))
	require.Equal(t, 1, api.Count(t, "idempotency_keys"))

	// The status URL works with its token, and the answer is the same 404
	// for a wrong token as for an unknown id.
	statusPath := strings.TrimPrefix(r.StatusURL, api.Config.PublicURL.String())
	st := api.Do(t, http.MethodGet, statusPath, "")
	require.Equal(t, http.StatusOK, st.Status, "body: %s", st.Body)
	var status struct {
		ID                string    `json:"id"`
		ReceivedAt        time.Time `json:"received_at"`
		ConfirmationEmail struct {
			State         string     `json:"state"`
			Attempts      int        `json:"attempts"`
			LastAttemptAt *time.Time `json:"last_attempt_at"`
		} `json:"confirmation_email"`
	}
	require.NoError(t, json.Unmarshal(st.Body, &status))
	require.Equal(t, r.ID, status.ID)
	require.True(t, r.ReceivedAt.Equal(status.ReceivedAt))
	require.Equal(t, "queued", status.ConfirmationEmail.State)

	wrongToken := api.Do(t, http.MethodGet, "/api/v1/applications/"+r.ID+"/status?token=AAAAAAAAAAAAAAAAAAAAAA", "")
	unknownID := api.Do(t, http.MethodGet, "/api/v1/applications/01900000-0000-7000-8000-000000000000/status?token=AAAAAAAAAAAAAAAAAAAAAA", "")
	noToken := api.Do(t, http.MethodGet, "/api/v1/applications/"+r.ID+"/status", "")
	for _, res := range []testkit.Response{wrongToken, unknownID, noToken} {
		requireProblem(t, res, http.StatusNotFound, "not-found")
	}
	require.Equal(t, string(unknownID.Body), string(wrongToken.Body))

	// A genuine token opens its own application only; for an id that does
	// not exist it gets the same 404 as anything else.
	other := api.Submit(t, slug, "key-2", `{"full_name":"Grace Hopper","email":"grace@example.com"}`)
	require.Equal(t, http.StatusCreated, other.Status)
	var o receipt
	require.NoError(t, json.Unmarshal(other.Body, &o))
	otherToken := o.StatusURL[strings.Index(o.StatusURL, "token=")+len("token="):]
	swapped := api.Do(t, http.MethodGet, "/api/v1/applications/"+r.ID+"/status?token="+otherToken, "")
	const missing = "01900000-0000-7000-8000-000000000000"
	genuineUnknown := api.Do(t, http.MethodGet, "/api/v1/applications/"+missing+"/status?token="+api.Config.StatusTokens.Derive(missing), "")
	for _, res := range []testkit.Response{swapped, genuineUnknown} {
		requireProblem(t, res, http.StatusNotFound, "not-found")
	}
}

// Rotating INTAKE_STATUS_SECRET: while the old secret is set as
// INTAKE_STATUS_SECRET_PREVIOUS, links made with it still open; new links
// and replays use the new secret; once it is dropped, old links are 404.
func TestStatusSecretRotation(t *testing.T) {
	t.Parallel()
	before := testkit.StartAPI(t, nil)
	slug := before.CreatePosting(t, "go-engineer")
	first := before.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, first.Status)
	var r receipt
	require.NoError(t, json.Unmarshal(first.Body, &r))
	oldLink := strings.TrimPrefix(r.StatusURL, before.Config.PublicURL.String())

	newKeys := func(previous bool) func(*config.Config) {
		return func(c *config.Config) {
			var prev []byte
			if previous {
				prev = []byte("intake test status secret: tests only!")
			}
			keys, err := statustoken.NewKeys([]byte("the next status secret, also for tests"), prev)
			require.NoError(t, err)
			c.StatusTokens = keys
		}
	}
	during := testkit.StartAPI(t, &testkit.APIOpts{DBURL: before.DBURL, Configure: newKeys(true)})
	after := testkit.StartAPI(t, &testkit.APIOpts{DBURL: before.DBURL, Configure: newKeys(false)})

	require.Equal(t, http.StatusOK, during.Do(t, http.MethodGet, oldLink, "").Status, "an old link during the rotation")
	replay := during.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, replay.Status)
	var rr receipt
	require.NoError(t, json.Unmarshal(replay.Body, &rr))
	require.Equal(t, r.ID, rr.ID)
	require.NotEqual(t, r.StatusURL, rr.StatusURL, "a replay hands out a link made with the new secret")
	newLink := strings.TrimPrefix(rr.StatusURL, during.Config.PublicURL.String())

	require.Equal(t, http.StatusOK, after.Do(t, http.MethodGet, newLink, "").Status)
	requireProblem(t, after.Do(t, http.MethodGet, oldLink, ""), http.StatusNotFound, "not-found")
}

func TestSubmitReplaysCompletedKey(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	first := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, first.Status)
	// Same request with other whitespace around the values is the same request.
	again := api.Submit(t, slug, "key-1", strings.Replace(validBody, `"Ada Lovelace"`, `"  Ada Lovelace "`, 1))

	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, string(first.Body), string(again.Body))
	require.Equal(t, first.Header.Get("Location"), again.Header.Get("Location"))
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "outbox_events"))
}

// The status token is a capability that only the applicant holds: the
// response stored under the idempotency key must not keep a copy of it,
// whether the application came through the API or the form.
func TestStoredResponseHoldsNoStatusToken(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	res := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	statusURL, err := url.Parse(r.StatusURL)
	require.NoError(t, err)
	token := statusURL.Query().Get("token")
	require.NotEmpty(t, token)

	var stored []byte
	require.NoError(t, api.Pool.QueryRow(context.Background(),
		`SELECT response_body FROM idempotency_keys WHERE key = 'key-1'`).Scan(&stored))
	require.NotContains(t, string(stored), token, "the stored 201 holds the status token")

	// The replay still answers the original 201 byte for byte, status_url
	// and Location included.
	again := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, string(res.Body), string(again.Body))
	require.Equal(t, r.StatusURL, again.Header.Get("Location"))
}

// A receipt stored before status tokens were derived still carries the old
// status_url (with a token nothing can check any more): a replay answers
// the derived link instead.
func TestReplayIgnoresStatusURLStoredBefore(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	first := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, first.Status)
	_, err := api.Pool.Exec(context.Background(), `UPDATE idempotency_keys
		SET response_body = convert_to(jsonb_set(convert_from(response_body, 'UTF8')::jsonb, '{status_url}',
			'"http://old.example/api/v1/applications/x/status?token=4HS6VK2ZKV5OFWLACTOZRJWAUU"')::text, 'UTF8')`)
	require.NoError(t, err)

	again := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, string(first.Body), string(again.Body))
	require.Equal(t, first.Header.Get("Location"), again.Header.Get("Location"))
}

func TestSubmitKeyReusedWithOtherBody(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)

	res := api.Submit(t, slug, "key-1", `{"full_name":"Ada Lovelace","email":"other@example.com"}`)

	requireProblem(t, res, http.StatusUnprocessableEntity, "idempotency-key-reused")
	// The same key on another posting is another request too.
	other := api.CreatePosting(t, "rust-engineer")
	requireProblem(t, api.Submit(t, other, "key-1", validBody), http.StatusUnprocessableEntity, "idempotency-key-reused")
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestSubmitKeyInFlight(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.IdempotencyWait = 300 * time.Millisecond
	}})
	slug := api.CreatePosting(t, "go-engineer")

	// Another request holds the key: its transaction has claimed it and not
	// finished.
	ctx := context.Background()
	tx, err := api.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back on purpose below
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)
		VALUES ('key-1', decode(repeat('00', 32), 'hex'), 'processing', now() + interval '2 days')`)
	require.NoError(t, err)

	start := time.Now()
	res := api.Submit(t, slug, "key-1", validBody)
	waited := time.Since(start)

	p := requireProblem(t, res, http.StatusConflict, "idempotency-key-in-flight")
	require.NotEmpty(t, p.Detail)
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	require.GreaterOrEqual(t, waited, 300*time.Millisecond, "the request waits for the first one before giving up")
	require.NoError(t, tx.Rollback(ctx))

	// The first request died (rolled back): the key is free again.
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestSubmitInvalidKey(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	for name, key := range map[string]string{
		"missing":   "",
		"too long":  strings.Repeat("k", 256),
		"non-ASCII": "clé",
		"control":   "a\tb",
	} {
		t.Run(name, func(t *testing.T) {
			requireProblem(t, api.Submit(t, slug, key, validBody), http.StatusBadRequest, "idempotency-key-invalid")
		})
	}
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, strings.Repeat("k", 255), validBody).Status)
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestSubmitDuplicateApplication(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	first := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, first.Status)
	var r receipt
	require.NoError(t, json.Unmarshal(first.Body, &r))

	res := api.Submit(t, slug, "key-2", `{"full_name":"Someone Else","email":"  ADA@Example.COM "}`)

	requireProblem(t, res, http.StatusConflict, "duplicate-application")
	body := string(res.Body)
	require.NotContains(t, body, r.ID)
	require.NotContains(t, body, r.ReceivedAt.Format("2006-01-02"))
	require.NotContains(t, strings.ToLower(body), "ada")
	require.Empty(t, res.Header.Get("Location"))
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "idempotency_keys"), "a refused request is not stored under its key")

	// The same email on another posting is a new application.
	other := api.CreatePosting(t, "rust-engineer")
	require.Equal(t, http.StatusCreated, api.Submit(t, other, "key-3", validBody).Status)
}

func TestSubmitValidation(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	res := api.Submit(t, slug, "key-1", `{"full_name":"","email":"not-an-email","phone":"call me","links":["ftp://x","https://ok.example"]}`)

	p := requireProblem(t, res, http.StatusUnprocessableEntity, "validation")
	fields := map[string]string{}
	for _, e := range p.Errors {
		fields[e.Field] = e.Message
	}
	require.Len(t, fields, 4, "%v", fields)
	for _, f := range []string{"full_name", "email", "phone", "links[0]"} {
		require.NotEmpty(t, fields[f], "missing error for %s", f)
	}
	require.Zero(t, api.Count(t, "applications"))

	// Not stored under its key: the client fixes the body and retries with
	// the same key.
	require.Zero(t, api.Count(t, "idempotency_keys"))
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
}

func TestSubmitUnknownPosting(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)

	requireProblem(t, api.Submit(t, "no-such-job", "key-1", validBody), http.StatusNotFound, "not-found")
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
}

func TestSubmitClosedPosting(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	_, err := api.Pool.Exec(context.Background(), `UPDATE postings SET status = 'closed' WHERE slug = $1`, slug)
	require.NoError(t, err)

	requireProblem(t, api.Submit(t, slug, "key-1", validBody), http.StatusConflict, "posting-closed")
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
}

func TestSubmitMalformedBody(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	for name, tc := range map[string]struct{ body, field string }{
		"not JSON":       {body: `full_name=Ada`},
		"truncated":      {body: `{"full_name":"Ada"`},
		"array":          {body: `[` + validBody + `]`},
		"null":           {body: `null`},
		"empty":          {body: ``},
		"trailing data":  {body: validBody + ` {}`},
		"two objects":    {body: validBody + validBody},
		"unknown field":  {body: `{"full_name":"Ada","email":"ada@example.com","salary":1}`, field: "salary"},
		"wrong type":     {body: `{"full_name":42,"email":"ada@example.com"}`, field: "full_name"},
		"links not list": {body: `{"full_name":"Ada","email":"ada@example.com","links":"https://x.example"}`, field: "links"},
	} {
		t.Run(name, func(t *testing.T) {
			p := requireProblem(t, api.Submit(t, slug, "key-"+name, tc.body), http.StatusBadRequest, "invalid-json")
			if tc.field != "" {
				require.Len(t, p.Errors, 1)
				require.Equal(t, tc.field, p.Errors[0].Field)
			}
		})
	}
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
}

func TestSubmitBodyTooLarge(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.MaxBodyBytes = 4096 }})
	slug := api.CreatePosting(t, "go-engineer")
	// The allowance is INTAKE_MAX_BODY_BYTES and the answers' worst case.
	big := `{"full_name":"Ada","email":"ada@example.com","cover_letter":"` + strings.Repeat("a", 4096+application.MaxAnswersBytes) + `"}`

	requireProblem(t, api.Submit(t, slug, "key-1", big), http.StatusRequestEntityTooLarge, "body-too-large")

	// Without a Content-Length (chunked) the limit still holds while reading.
	req, err := http.NewRequest(http.MethodPost, api.URL+"/api/v1/jobs/"+slug+"/applications", struct{ *strings.Reader }{strings.NewReader(big)})
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "key-2")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Zero(t, api.Count(t, "applications"))
}

func TestSubmitWrongContentType(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")

	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1"} {
		res := api.Do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", validBody, "Content-Type", ct, "Idempotency-Key", "k")
		requireProblem(t, res, http.StatusUnsupportedMediaType, "unsupported-media-type")
	}
	res := api.Do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", validBody,
		"Content-Type", "application/json; charset=UTF-8", "Idempotency-Key", "k")
	require.Equal(t, http.StatusCreated, res.Status)
}

func TestSubmitRateLimited(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.RateLimit = 0.5
		c.RateBurst = 3
	}})
	slug := api.CreatePosting(t, "go-engineer")

	for i := range 3 {
		body := `{"full_name":"Ada","email":"ada` + strconv.Itoa(i) + `@example.com"}`
		require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-"+strconv.Itoa(i), body).Status)
	}
	res := api.Submit(t, slug, "key-3", `{"full_name":"Ada","email":"ada3@example.com"}`)

	requireProblem(t, res, http.StatusTooManyRequests, "rate-limited")
	require.Equal(t, "2", res.Header.Get("Retry-After"))
	require.Equal(t, 3, api.Count(t, "applications"))
}

func TestSubmitDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	// A "database" that accepts connections and never answers: the worst
	// case, where only the request's deadline stops the wait.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	// Nothing listens on a port that was just closed.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	require.NoError(t, closed.Close())

	for name, addr := range map[string]string{"silent": ln.Addr().String(), "refused": closedAddr} {
		t.Run(name, func(t *testing.T) {
			api := testkit.StartAPI(t, &testkit.APIOpts{
				DBURL: "postgres://postgres@" + addr + "/intake?sslmode=disable&connect_timeout=30",
				Configure: func(c *config.Config) {
					c.RequestTimeout = 500 * time.Millisecond
					c.IdempotencyWait = 100 * time.Millisecond
				},
			})
			start := time.Now()
			res := api.Submit(t, "go-engineer", "key-1", validBody)
			requireProblem(t, res, http.StatusServiceUnavailable, "unavailable")
			require.Equal(t, "2", res.Header.Get("Retry-After"))
			require.Less(t, time.Since(start), 3*time.Second, "the request's deadline bounds the wait")

			ready := api.Do(t, http.MethodGet, "/readyz", "")
			requireProblem(t, ready, http.StatusServiceUnavailable, "not-ready")
		})
	}
}

func TestEveryResponseHasRequestID(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)

	for _, path := range []string{"/healthz", "/readyz", "/api/v1/jobs", "/api/v1/jobs/nope", "/no/such/route"} {
		res := api.Do(t, http.MethodGet, path, "")
		require.NotEmpty(t, res.Header.Get("X-Request-Id"), path)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), path)
	}
	// A client's own well-formed id is kept for correlation; anything else is replaced.
	res := api.Do(t, http.MethodGet, "/healthz", "", "X-Request-Id", "client-123")
	require.Equal(t, "client-123", res.Header.Get("X-Request-Id"))
	res = api.Do(t, http.MethodGet, "/healthz", "", "X-Request-Id", "bad id\" injected")
	require.NotEqual(t, "bad id\" injected", res.Header.Get("X-Request-Id"))
	require.NotEmpty(t, res.Header.Get("X-Request-Id"))
}

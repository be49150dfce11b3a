package httpapi_test

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// browser is an HTTP client with cookies that does not follow redirects,
// like a form-posting browser seen one request at a time.
type browser struct {
	t      *testing.T
	api    *testkit.API
	client *http.Client
}

func newBrowser(t *testing.T, api *testkit.API) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, api: api, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	Status int
	Header http.Header
	Body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.api.URL+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.api.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenInput = regexp.MustCompile(`name="(csrf_token|idempotency_key)" value="([^"]*)"`)

// formFields reads the hidden fields a rendered form carries.
func formFields(t *testing.T, body string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], m[2])
	}
	require.NotEmpty(t, v.Get("csrf_token"), "form has a CSRF token")
	require.NotEmpty(t, v.Get("idempotency_key"), "form has an idempotency key")
	return v
}

func fillIn(hidden url.Values, name, email string) url.Values {
	v := url.Values{}
	for k := range hidden {
		v.Set(k, hidden.Get(k))
	}
	v.Set("full_name", name)
	v.Set("email", email)
	v.Set("phone", "+44 20 7946 0000")
	v.Set("cover_letter", "I like engines.\nAnd poetry.")
	v.Set("links", "https://example.com/ada\n\nhttps://github.com/ada")
	return v
}

var (
	uuidPattern  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	tokenPattern = regexp.MustCompile(`(name="csrf_token" value=")[^"]*`)
	datePattern  = regexp.MustCompile(`<time datetime="[^"]*">[^<]*</time>`)
	refPattern   = regexp.MustCompile(`reference: <strong>[0-9A-F]{4}-[0-9A-F]{4}</strong>`)
)

// golden compares a page with testdata/<name>.golden after replacing what
// changes on every run (ids, tokens, times); -update rewrites it.
func golden(t *testing.T, name, body string) {
	t.Helper()
	body = uuidPattern.ReplaceAllString(body, "00000000-0000-0000-0000-000000000000")
	body = tokenPattern.ReplaceAllString(body, "${1}CSRF")
	body = datePattern.ReplaceAllString(body, `<time datetime="TIME">TIME</time>`)
	body = refPattern.ReplaceAllString(body, `reference: <strong>REF</strong>`)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), body, "rendered %s differs from %s (go test -update to accept)", name, path)
}

func pagesSetup(t *testing.T) (*testkit.API, *browser) {
	t.Helper()
	api := testkit.StartAPI(t, nil)
	api.CreatePosting(t, "go-engineer")
	api.CreatePosting(t, "rust-engineer")
	api.CreatePosting(t, "old-job")
	_, err := api.Pool.Exec(context.Background(), `
		UPDATE postings SET description = 'Build <reliable> things & ship them.' || E'\n\n' || 'On call: one week in five.',
			team = 'Platform & Data', location = 'Remote <EU>' WHERE slug = 'go-engineer';
		UPDATE postings SET status = 'closed' WHERE slug = 'old-job'`)
	require.NoError(t, err)
	return api, newBrowser(t, api)
}

func TestPagesGolden(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)

	home := b.get("/")
	require.Equal(t, http.StatusOK, home.Status)
	require.NotContains(t, home.Body, "old-job", "closed postings are not listed")
	require.Contains(t, home.Body, `<h2 id="team-0" class="team-name">Platform &amp; Data</h2>`, "grouped under the team")
	require.Contains(t, home.Body, `<h2 id="team-1" class="team-name">Other positions</h2>`, "the postings without a team last")
	require.Contains(t, home.Body, `<span class="posting-location">Remote &lt;EU&gt;</span>`)
	require.Equal(t, 1, strings.Count(home.Body, "posting-location"), "no location given, none shown")
	golden(t, "index.html", home.Body)

	form := b.get("/jobs/go-engineer")
	require.Equal(t, http.StatusOK, form.Status)
	require.Contains(t, form.Body, "<p>Build &lt;reliable&gt; things &amp; ship them.</p>\n<p>On call: one week in five.</p>", "a paragraph each")
	require.Contains(t, form.Body, `<p class="posting-meta"><span class="team"><span class="visually-hidden">Team: </span>Platform &amp; Data</span><span class="location"><span class="visually-hidden">Location: </span>Remote &lt;EU&gt;</span></p>`)
	require.NotContains(t, b.get("/jobs/rust-engineer").Body, "posting-meta", "neither given, no line for them")
	golden(t, "posting.html", form.Body)

	invalid := b.post("/jobs/go-engineer/apply", fillIn(formFields(t, form.Body), `<b>Ada</b>`, "not-an-email"))
	require.Equal(t, http.StatusUnprocessableEntity, invalid.Status)
	golden(t, "posting_invalid.html", invalid.Body)

	created := b.post("/jobs/go-engineer/apply", fillIn(formFields(t, form.Body), "Ada Lovelace", "ada@example.com"))
	require.Equal(t, http.StatusSeeOther, created.Status)
	status := b.get(created.Header.Get("Location"))
	require.Equal(t, http.StatusOK, status.Status)
	golden(t, "status_queued.html", status.Body)

	closed := b.get("/jobs/old-job")
	require.Equal(t, http.StatusGone, closed.Status)
	golden(t, "closed.html", closed.Body)

	missing := b.get("/jobs/no-such-job")
	require.Equal(t, http.StatusNotFound, missing.Status)
	require.Contains(t, missing.Header.Get("Content-Type"), "text/html")
	golden(t, "not_found.html", missing.Body)
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestApplyFormPostRedirectGet(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	form := b.get("/jobs/go-engineer")
	fields := fillIn(formFields(t, form.Body), "Ada Lovelace", "ada@example.com")

	first := b.post("/jobs/go-engineer/apply", fields)
	// A double click or a browser resubmit sends the same form again.
	again := b.post("/jobs/go-engineer/apply", fields)

	require.Equal(t, http.StatusSeeOther, first.Status)
	require.Equal(t, http.StatusSeeOther, again.Status)
	location := first.Header.Get("Location")
	require.Regexp(t, `^/applications/[0-9a-f-]{36}\?token=[A-Za-z0-9_-]{22}$`, location)
	require.Equal(t, location, again.Header.Get("Location"), "the resubmit lands on the same status page")
	require.Equal(t, 1, api.Count(t, "applications"))

	status := b.get(location)
	require.Equal(t, http.StatusOK, status.Status)
	require.Contains(t, status.Body, "Application received")
	require.Contains(t, status.Body, "queued")
	require.Contains(t, status.Body, `data-watch="true"`, "a state that can still change is watched")
	require.NotContains(t, status.Body, `http-equiv="refresh"`)
	require.Equal(t, "no-store", status.Header.Get("Cache-Control"))

	var links []string
	require.NoError(t, api.Pool.QueryRow(context.Background(), `SELECT links FROM applications`).Scan(&links))
	require.Equal(t, []string{"https://example.com/ada", "https://github.com/ada"}, links)

	wrong := b.get(strings.Split(location, "?")[0] + "?token=AAAAAAAAAAAAAAAAAAAAAA")
	require.Equal(t, http.StatusNotFound, wrong.Status)

	// The redirect's token is kept nowhere, not even in the response stored
	// under the form's idempotency key.
	token := location[strings.Index(location, "token=")+len("token="):]
	var stored []byte
	require.NoError(t, api.Pool.QueryRow(context.Background(), `SELECT response_body FROM idempotency_keys`).Scan(&stored))
	require.NotContains(t, string(stored), token)
}

func TestApplyFormValidationKeepsValues(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	form := b.get("/jobs/go-engineer")
	hidden := formFields(t, form.Body)
	fields := fillIn(hidden, "Ada Lovelace", "ada@@example")
	fields.Set("links", "https://ok.example\nftp://nope\nhttps://ann:pw@example.com")

	res := b.post("/jobs/go-engineer/apply", fields)

	require.Equal(t, http.StatusUnprocessableEntity, res.Status)
	require.Contains(t, res.Body, `value="Ada Lovelace"`)
	require.Contains(t, res.Body, `value="ada@@example"`)
	require.Contains(t, res.Body, "I like engines.\nAnd poetry.</textarea>")
	// Messages are sentences, and every bad link is named, not the first.
	require.Contains(t, res.Body, `<p class="field-error" id="email-error">Email must be an email address like name@example.com.</p>`)
	require.Contains(t, res.Body, `aria-describedby="email-error"`)
	require.Contains(t, res.Body, `<p class="field-error" id="links-error">Link 2 must be an http or https URL. Link 3 must not contain a user name or password.</p>`)
	require.Contains(t, res.Body, `<a href="#email">`)
	require.Contains(t, res.Body, `tabindex="-1" autofocus`, "focus moves to the error summary")
	require.Contains(t, res.Body, `name="idempotency_key" value="`+hidden.Get("idempotency_key")+`"`, "the key is kept: nothing was stored under it")
	require.Zero(t, api.Count(t, "applications"))

	fields.Set("email", "ada@example.com")
	fields.Set("links", "https://ok.example")
	require.Equal(t, http.StatusSeeOther, b.post("/jobs/go-engineer/apply", fields).Status)
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestApplyFormDuplicateEmail(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	first := b.post("/jobs/go-engineer/apply", fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada Lovelace", "ada@example.com"))
	require.Equal(t, http.StatusSeeOther, first.Status)

	// A fresh form (new key) with the same email in other case.
	res := b.post("/jobs/go-engineer/apply", fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada L.", "ADA@example.com"))

	require.Equal(t, http.StatusConflict, res.Status)
	require.Contains(t, res.Body, "We already have an application from this email address for this position")
	id := strings.TrimPrefix(strings.Split(first.Header.Get("Location"), "?")[0], "/applications/")
	require.NotContains(t, res.Body, id)
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestApplyFormClosedPosting(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	form := b.get("/jobs/go-engineer")
	_, err := api.Pool.Exec(context.Background(), `UPDATE postings SET status = 'closed' WHERE slug = 'go-engineer'`)
	require.NoError(t, err)

	res := b.post("/jobs/go-engineer/apply", fillIn(formFields(t, form.Body), "Ada Lovelace", "ada@example.com"))

	require.Equal(t, http.StatusConflict, res.Status)
	require.Contains(t, res.Body, "This position is closed")
	require.Zero(t, api.Count(t, "applications"))
}

func TestApplyFormRequiresCSRFToken(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)

	// Another site's page posting into ours has neither our cookie nor the
	// token (a fresh client), or declares itself cross-site.
	stranger := newBrowser(t, api)
	noToken := fillIn(hidden, "Ada Lovelace", "ada@example.com")
	noToken.Del("csrf_token")
	res := stranger.post("/jobs/go-engineer/apply", noToken)
	require.Equal(t, http.StatusForbidden, res.Status, "a refusal, not a bad request")
	require.Contains(t, res.Body, "This form has expired")

	forged := stranger.post("/jobs/go-engineer/apply", fillIn(hidden, "Ada Lovelace", "ada@example.com"))
	require.Equal(t, http.StatusForbidden, forged.Status, "a token without its cookie is refused")

	req, err := http.NewRequest(http.MethodPost, api.URL+"/jobs/go-engineer/apply",
		strings.NewReader(fillIn(hidden, "Ada Lovelace", "ada@example.com").Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, b.do(req).Status)
	require.Zero(t, api.Count(t, "applications"))
}

func TestPagesSecurityHeaders(t *testing.T) {
	t.Parallel()
	_, b := pagesSetup(t)

	for _, path := range []string{"/", "/jobs/go-engineer", "/jobs/nope", "/static/style.css"} {
		res := b.get(path)
		csp := res.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'", path)
		require.Contains(t, csp, "frame-ancestors 'none'", path)
		require.NotContains(t, csp, "unsafe-inline", path)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), path)
		require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"), path)
		require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"), path)
		require.NotEmpty(t, res.Header.Get("X-Request-Id"), path)
	}
	require.NotContains(t, b.get("/jobs/go-engineer").Body, "<script>", "no inline script")
	require.Contains(t, b.get("/static/app.js").Body, "addEventListener")
}

func TestApplyFormWhileFirstSubmitStillRuns(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.IdempotencyWait = 200 * time.Millisecond }})
	api.CreatePosting(t, "go-engineer")
	b := newBrowser(t, api)
	fields := fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada Lovelace", "ada@example.com")
	ctx := context.Background()
	tx, err := api.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back on purpose below
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)
		VALUES ($1, decode(repeat('00', 32), 'hex'), 'processing', now() + interval '2 days')`, fields.Get("idempotency_key"))
	require.NoError(t, err)

	res := b.post("/jobs/go-engineer/apply", fields)

	require.Equal(t, http.StatusConflict, res.Status)
	require.Contains(t, res.Body, "We are still saving this application")
	require.Contains(t, res.Body, `name="idempotency_key" value="`+fields.Get("idempotency_key")+`"`, "the same key, so sending again replays")
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, api.Count(t, "applications"))
}

// The site speaks for the employer: its name in every title and the
// header (or its logo, whose origin the page's policy then allows), its
// contact address in the footer.
func TestPagesNameTheEmployer(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.Employer = application.Employer{Name: "Example Ltd", LogoURL: "https://cdn.example.com/logo.svg", Contact: "jobs@example.com"}
	}})
	api.CreatePosting(t, "go-engineer")
	b := newBrowser(t, api)
	for _, path := range []string{"/", "/jobs/go-engineer", "/jobs/nope"} {
		res := b.get(path)
		require.Contains(t, res.Body, " · Example Ltd careers</title>", path)
		require.Contains(t, res.Body, `<img src="https://cdn.example.com/logo.svg" alt="Example Ltd" class="logo">`, path)
		require.Contains(t, res.Body, `<a href="mailto:jobs@example.com">jobs@example.com</a>`, path)
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "img-src 'self' https://cdn.example.com;", path)
		require.NotContains(t, res.Body, ">Intake<", path)
	}
}

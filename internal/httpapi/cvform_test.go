package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/cvfile"
	"github.com/intake/intake/internal/testkit"
)

// postMultipart sends the form as a browser does with its file input:
// the fields in order, then the file part (an empty one, as browsers send
// for a file input left empty, when cv is nil).
func (b *browser) postMultipart(path string, fields url.Values, order []string, cv *part) page {
	b.t.Helper()
	var parts []part
	for _, name := range order {
		if v, ok := fields[name]; ok {
			parts = append(parts, part{name: name, body: []byte(v[0])})
		}
	}
	if cv == nil {
		cv = &part{name: "cv", contentType: "application/octet-stream"}
	}
	parts = append(parts, *cv)
	body, contentType := multipartBody(b.t, parts...)
	req, err := http.NewRequest(http.MethodPost, b.api.URL+path, bytes.NewReader([]byte(body)))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", contentType)
	return b.do(req)
}

var formOrder = []string{"csrf_token", "idempotency_key", "full_name", "email", "phone", "cover_letter", "links"}

func cvFormSetup(t *testing.T) (*testkit.API, *browser) {
	t.Helper()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.MaxCVBytes = 4096 }})
	api.CreatePosting(t, "go-engineer")
	return api, newBrowser(t, api)
}

func TestApplyFormWithCV(t *testing.T) {
	t.Parallel()
	api, b := cvFormSetup(t)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)
	fields := fillIn(hidden, "Ada Lovelace", "ada@example.com")

	res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, &part{name: "cv", filename: "cv.pdf", contentType: "application/pdf", body: testkit.SamplePDF()})
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	var filename, contentType string
	var content []byte
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT filename, content_type, content FROM application_files`).Scan(&filename, &contentType, &content))
	require.Equal(t, "cv.pdf", filename)
	require.Equal(t, cvfile.PDF, contentType)
	require.Equal(t, testkit.SamplePDF(), content)

	// The same form again (a double click) lands on the same status page.
	again := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, &part{name: "cv", filename: "cv.pdf", contentType: "application/pdf", body: testkit.SamplePDF()})
	require.Equal(t, http.StatusSeeOther, again.Status, again.Body)
	require.Equal(t, res.Header.Get("Location"), again.Header.Get("Location"))
	require.Equal(t, 1, api.Count(t, "applications"))
}

func TestApplyFormWithoutCV(t *testing.T) {
	t.Parallel()
	api, b := cvFormSetup(t)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)
	res := b.postMultipart("/jobs/go-engineer/apply", fillIn(hidden, "Ada Lovelace", "ada@example.com"), formOrder, nil)
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "application_files"))
}

func TestApplyFormCVRefusals(t *testing.T) {
	t.Parallel()
	api, b := cvFormSetup(t)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)
	fields := fillIn(hidden, "Ada Lovelace", "ada@example.com")
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	tests := []struct {
		name    string
		cv      part
		status  int
		message string
	}{
		{"too large", part{name: "cv", filename: "cv.txt", contentType: "text/plain", body: bytes.Repeat([]byte("a"), 5000)},
			http.StatusRequestEntityTooLarge, "CV must be at most 4 KB. The file was not kept: please choose it again."},
		{"png", part{name: "cv", filename: "photo.png", contentType: "image/png", body: png},
			http.StatusUnsupportedMediaType, "CV must be a PDF, Word (DOCX), OpenDocument (ODT) or plain text file. The file was not kept: please choose it again."},
		{"png named pdf", part{name: "cv", filename: "cv.pdf", contentType: "application/pdf", body: png},
			http.StatusUnprocessableEntity, "CV says it is a PDF but its content is not. The file was not kept: please choose it again."},
	}
	for _, tt := range tests {
		res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, &tt.cv)
		require.Equal(t, tt.status, res.Status, "%s: %s", tt.name, res.Body)
		require.Contains(t, res.Body, `<p class="field-error" id="cv-error">`+tt.message+`</p>`, tt.name)
		require.Contains(t, res.Body, `<li><a href="#cv">`+tt.message+`</a></li>`, tt.name)
		require.Contains(t, res.Body, `aria-describedby="cv-hint cv-error" aria-invalid="true"`, tt.name)
		require.Contains(t, res.Body, `value="Ada Lovelace"`, "%s: the fields are kept", tt.name)
		require.Contains(t, res.Body, `name="idempotency_key" value="`+hidden.Get("idempotency_key")+`"`, tt.name)
		requireNothingStored(t, api)
	}

	// A good CV but another field wrong: the file is lost all the same.
	fields.Set("email", "ada@@example")
	res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, &part{name: "cv", filename: "cv.pdf", body: testkit.SamplePDF()})
	require.Equal(t, http.StatusUnprocessableEntity, res.Status, res.Body)
	require.Contains(t, res.Body, `<p class="field-error" id="cv-error">Please choose your CV again: a form sent back cannot keep its file.</p>`)
	requireNothingStored(t, api)
}

// The CSRF check reads the token from a multipart body as from a
// url-encoded one.
func TestApplyFormMultipartNeedsCSRFToken(t *testing.T) {
	t.Parallel()
	api, b := cvFormSetup(t)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)
	fields := fillIn(hidden, "Ada Lovelace", "ada@example.com")
	for _, token := range []string{"", "forged"} {
		fields.Set("csrf_token", token)
		res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, &part{name: "cv", filename: "cv.pdf", body: testkit.SamplePDF()})
		require.Equal(t, http.StatusForbidden, res.Status, res.Body)
	}
	fields.Del("csrf_token")
	res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, nil)
	require.Equal(t, http.StatusForbidden, res.Status, res.Body)
	requireNothingStored(t, api)
}

// gatedReader gives the first open bytes of a request body at once and
// the rest only once released: a server that answers while the reader is
// held has not waited for the rest of the body.
type gatedReader struct {
	r        io.Reader
	open     int64
	n        atomic.Int64
	release  chan struct{}
	released sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	switch got := g.n.Load(); {
	case got >= g.open:
		<-g.release
	case int64(len(p)) > g.open-got:
		p = p[:g.open-got]
	}
	n, err := g.r.Read(p)
	g.n.Add(int64(n))
	return n, err
}

func (g *gatedReader) Release() { g.released.Do(func() { close(g.release) }) }

// The limiter decides on the form's post before its multipart body is
// read: a client over its allowance costs the server no megabytes of CV,
// and a post with a forged token (403) uses up the allowance as any other.
func TestApplyFormRateLimitedBeforeBodyRead(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.MaxCVBytes = 4 << 20
		c.RateLimit = 0.001
		c.RateBurst = 1
	}})
	api.CreatePosting(t, "go-engineer")
	b := newBrowser(t, api)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)
	fields := fillIn(hidden, "Ada Lovelace", "ada@example.com")

	big := bytes.Repeat([]byte("a"), 4<<20-10)
	// The forged post's body is read whole (csrf has to); the second is
	// held after its first megabyte.
	post := func(token string, open int64) (int, int64) {
		fields.Set("csrf_token", token)
		var parts []part
		for _, name := range formOrder {
			parts = append(parts, part{name: name, body: []byte(fields.Get(name))})
		}
		parts = append(parts, part{name: "cv", filename: "cv.txt", contentType: "text/plain", body: big})
		body, ct := multipartBody(t, parts...)
		g := &gatedReader{r: strings.NewReader(body), open: open, release: make(chan struct{})}
		// A server that waits for the whole body gets it after a generous
		// while, and the test fails on the bytes it took.
		timer := time.AfterFunc(20*time.Second, g.Release)
		defer timer.Stop()
		defer g.Release()
		req, err := http.NewRequest(http.MethodPost, api.URL+"/jobs/go-engineer/apply", g)
		require.NoError(t, err)
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", ct)
		res := b.do(req)
		timer.Stop()
		g.Release()
		return res.Status, g.n.Load()
	}
	st, _ := post("forged", 8<<20)
	require.Equal(t, http.StatusForbidden, st)
	st, n := post(hidden.Get("csrf_token"), 1<<20)
	require.Equal(t, http.StatusTooManyRequests, st, "the forged post used up the burst of 1")
	require.LessOrEqual(t, n, int64(1<<20), "the limiter answers before the body is read")
	requireNothingStored(t, api)
}

// A form with a file that comes back because its idempotency key was used
// with other details, or is still being stored, says beside the file input
// that the file was not kept, as every other form sent back does.
func TestApplyFormIdempotencyReRendersAskForCVAgain(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.MaxCVBytes = 4096
		c.IdempotencyWait = 200 * time.Millisecond
	}})
	api.CreatePosting(t, "go-engineer")
	b := newBrowser(t, api)
	const again = "Please choose your CV again: a form sent back cannot keep its file."
	cv := &part{name: "cv", filename: "cv.pdf", contentType: "application/pdf", body: testkit.SamplePDF()}

	fields := fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada Lovelace", "ada@example.com")
	res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, cv)
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	fields.Set("email", "ada.lovelace@example.com")
	res = b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, cv)
	require.Equal(t, http.StatusUnprocessableEntity, res.Status, res.Body)
	require.Contains(t, res.Body, "This form was already sent with other details.")
	require.Contains(t, res.Body, again)

	fields = fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada Lovelace", "ada2@example.com")
	ctx := context.Background()
	tx, err := api.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back on purpose below
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)
		VALUES ($1, decode(repeat('00', 32), 'hex'), 'processing', now() + interval '2 days')`, fields.Get("idempotency_key"))
	require.NoError(t, err)
	res = b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, cv)
	require.Equal(t, http.StatusConflict, res.Status, res.Body)
	require.Contains(t, res.Body, "We are still saving this application")
	require.Contains(t, res.Body, again)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 1, api.Count(t, "applications"))
}

// A form whose text goes over the allowance is shown again (413) with the
// values read before the field that went over (here the links box, so
// its value and the file after it are not there), not a page that loses
// them all; it stores nothing.
func TestApplyFormTooLongKeepsValues(t *testing.T) {
	t.Parallel()
	api, b := cvFormSetup(t)
	fields := fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada Lovelace", "ada@example.com")
	fields.Set("links", strings.Repeat("x", 64<<10+application.MaxAnswersBytes))
	res := b.postMultipart("/jobs/go-engineer/apply", fields, formOrder, &part{name: "cv", filename: "cv.pdf", contentType: "application/pdf", body: testkit.SamplePDF()})
	require.Equal(t, http.StatusRequestEntityTooLarge, res.Status, res.Body)
	require.Contains(t, res.Body, "This form is too long to send.")
	require.Contains(t, res.Body, `value="Ada Lovelace"`)
	require.Contains(t, res.Body, `value="ada@example.com"`)
	require.Contains(t, res.Body, "I like engines.")
	requireNothingStored(t, api)
}

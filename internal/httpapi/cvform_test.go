package httpapi_test

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

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

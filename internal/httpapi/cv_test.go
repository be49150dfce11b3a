package httpapi_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/cvfile"
	"github.com/intake/intake/internal/testkit"
)

// part is one part of a multipart body: a field, or a file when filename
// is set.
type part struct {
	name, filename, contentType string
	body                        []byte
}

func jsonPart(body string) part { return part{name: "application", body: []byte(body)} }

func cvPart(filename, contentType string, body []byte) part {
	return part{name: "cv", filename: filename, contentType: contentType, body: body}
}

// multipartBody encodes parts in order and returns the body and its
// Content-Type.
func multipartBody(t *testing.T, parts ...part) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disposition := fmt.Sprintf(`form-data; name="%s"`, p.name)
		if p.filename != "" {
			disposition += fmt.Sprintf(`; filename="%s"`, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.filename))
		}
		h.Set("Content-Disposition", disposition)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		pw, err := w.CreatePart(h)
		require.NoError(t, err)
		_, err = pw.Write(p.body)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return buf.String(), w.FormDataContentType()
}

func submitMultipart(t *testing.T, api *testkit.API, slug, key string, parts ...part) testkit.Response {
	t.Helper()
	body, contentType := multipartBody(t, parts...)
	return api.Do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", body,
		"Content-Type", contentType, "Idempotency-Key", key)
}

// cvSetup starts an API with a small CV limit, so a file over it is cheap.
func cvSetup(t *testing.T) (*testkit.API, string) {
	t.Helper()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.MaxCVBytes = 4096 }})
	return api, api.CreatePosting(t, "go-engineer")
}

// requireNothingStored: no application, file, event or key.
func requireNothingStored(t *testing.T, api *testkit.API) {
	t.Helper()
	for _, table := range []string{"applications", "application_files", "outbox_events", "idempotency_keys"} {
		require.Zero(t, api.Count(t, table), table)
	}
}

func TestSubmitMultipartEachKind(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	_, viewer := mint(t, api, access.RoleViewer)
	kinds := []struct {
		filename, declared, want string
		content                  []byte
	}{
		{"Ada Lovelace CV.pdf", "application/pdf", cvfile.PDF, testkit.SamplePDF()},
		{"cv.docx", cvfile.DOCX, cvfile.DOCX, testkit.SampleDOCX()},
		{"cv.odt", cvfile.ODT, cvfile.ODT, testkit.SampleODT()},
		// The client's type says nothing the server keeps: text is text.
		{"cv.txt", "application/octet-stream", cvfile.Text, []byte("Ada Lovelace\nAnalyst\n")},
	}
	for i, k := range kinds {
		email := fmt.Sprintf("ada%d@example.com", i)
		res := submitMultipart(t, api, slug, "key-"+k.filename,
			jsonPart(`{"full_name":"Ada Lovelace","email":"`+email+`"}`), cvPart(k.filename, k.declared, k.content))
		require.Equal(t, http.StatusCreated, res.Status, "%s: %s", k.filename, res.Body)
		var r receipt
		require.NoError(t, json.Unmarshal(res.Body, &r))

		rec := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID, "")
		require.Equal(t, http.StatusOK, rec.Status, "body: %s", rec.Body)
		var got struct {
			CV *struct {
				Filename    string `json:"filename"`
				ContentType string `json:"content_type"`
				Size        int64  `json:"size"`
				SHA256      string `json:"sha256"`
			} `json:"cv"`
		}
		require.NoError(t, json.Unmarshal(rec.Body, &got))
		require.NotNil(t, got.CV, "body: %s", rec.Body)
		sum := sha256.Sum256(k.content)
		require.Equal(t, k.filename, got.CV.Filename)
		require.Equal(t, k.want, got.CV.ContentType)
		require.EqualValues(t, len(k.content), got.CV.Size)
		require.Equal(t, hex.EncodeToString(sum[:]), got.CV.SHA256)

		dl := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID+"/cv", "")
		require.Equal(t, http.StatusOK, dl.Status, "body: %s", dl.Body)
		require.Equal(t, k.content, dl.Body)
		require.Equal(t, k.want, dl.Header.Get("Content-Type"))
		require.Equal(t, "nosniff", dl.Header.Get("X-Content-Type-Options"))
		require.True(t, strings.HasPrefix(dl.Header.Get("Content-Disposition"), "attachment; "), dl.Header.Get("Content-Disposition"))
	}
	require.Equal(t, len(kinds), api.Count(t, "application_files"))
}

func TestSubmitMultipartWithoutCV(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	res := submitMultipart(t, api, slug, "key-1", jsonPart(validBody))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	// The same request as JSON, under the same key, is the same request.
	replay := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, replay.Status, "body: %s", replay.Body)
	require.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))
	require.Equal(t, string(res.Body), string(replay.Body))

	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	_, viewer := mint(t, api, access.RoleViewer)
	rec := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID, "")
	require.Contains(t, string(rec.Body), `"cv":null`)
	dl := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID+"/cv", "")
	requireProblem(t, dl, http.StatusNotFound, "not-found")
	require.Zero(t, api.Count(t, "application_files"))
}

// Every refusal stores nothing and leaves the key free: the same key then
// takes the corrected request.
func TestSubmitMultipartRefusals(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	plainZip := zipWith(t, "notes.txt")
	zipNoDocument := zipWith(t, "[Content_Types].xml")
	tests := []struct {
		name   string
		parts  []part
		status int
		typ    string
		field  string
	}{
		{"too large", []part{jsonPart(validBody), cvPart("cv.txt", "text/plain", bytes.Repeat([]byte("a"), 4097))},
			http.StatusRequestEntityTooLarge, "body-too-large", "cv"},
		{"png", []part{jsonPart(validBody), cvPart("photo.png", "image/png", png)},
			http.StatusUnsupportedMediaType, "unsupported-cv-type", "cv"},
		{"zip", []part{jsonPart(validBody), cvPart("cv.zip", "application/zip", plainZip)},
			http.StatusUnsupportedMediaType, "unsupported-cv-type", "cv"},
		{"zip without word/document.xml named docx", []part{jsonPart(validBody), cvPart("cv.docx", cvfile.DOCX, zipNoDocument)},
			http.StatusUnprocessableEntity, "validation", "cv"},
		{"empty file", []part{jsonPart(validBody), cvPart("cv.pdf", "application/pdf", nil)},
			http.StatusUnprocessableEntity, "validation", "cv"},
		{"png named pdf", []part{jsonPart(validBody), cvPart("cv.pdf", "application/pdf", png)},
			http.StatusUnprocessableEntity, "validation", "cv"},
		{"odt named docx", []part{jsonPart(validBody), cvPart("cv.docx", cvfile.DOCX, testkit.SampleODT())},
			http.StatusUnprocessableEntity, "validation", "cv"},
		{"unknown part", []part{jsonPart(validBody), {name: "photo", body: []byte("x")}},
			http.StatusBadRequest, "invalid-json", "photo"},
		{"repeated application", []part{jsonPart(validBody), jsonPart(validBody)},
			http.StatusBadRequest, "invalid-json", "application"},
		{"repeated cv", []part{jsonPart(validBody), cvPart("a.pdf", "", testkit.SamplePDF()), cvPart("b.pdf", "", testkit.SamplePDF())},
			http.StatusBadRequest, "invalid-json", "cv"},
		{"no application", []part{cvPart("cv.pdf", "", testkit.SamplePDF())},
			http.StatusBadRequest, "invalid-json", "application"},
		{"unknown json field", []part{jsonPart(`{"full_name":"Ada","email":"ada@example.com","age":3}`)},
			http.StatusBadRequest, "invalid-json", "age"},
		{"invalid email and lying cv", []part{jsonPart(`{"full_name":"Ada","email":"nope"}`), cvPart("cv.pdf", "", png)},
			http.StatusUnprocessableEntity, "validation", "cv"},
		{"invalid email and lying cv, email named too", []part{jsonPart(`{"full_name":"Ada","email":"nope"}`), cvPart("cv.pdf", "", png)},
			http.StatusUnprocessableEntity, "validation", "email"},
	}
	for _, tt := range tests {
		res := submitMultipart(t, api, slug, "key-1", tt.parts...)
		p := requireProblem(t, res, tt.status, tt.typ)
		var fields []string
		for _, e := range p.Errors {
			fields = append(fields, e.Field)
		}
		require.Contains(t, fields, tt.field, "%s: %s", tt.name, res.Body)
		requireNothingStored(t, api)
	}

	res := submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart("cv.pdf", "application/pdf", testkit.SamplePDF()))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
}

// zipWith is a zip archive holding the named (empty) entries.
func zipWith(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range names {
		_, err := zw.Create(name)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestSubmitMultipartIdempotency(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	first := submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart("cv.pdf", "application/pdf", testkit.SamplePDF()))
	require.Equal(t, http.StatusCreated, first.Status, "body: %s", first.Body)

	// Same key, same file (under another name even): the first answer again.
	again := submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart("renamed.pdf", "application/pdf", testkit.SamplePDF()))
	require.Equal(t, http.StatusCreated, again.Status, "body: %s", again.Body)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, string(first.Body), string(again.Body))

	// Same key, same fields, another file, or none: a reused key.
	other := submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart("cv.txt", "text/plain", []byte("another CV\n")))
	requireProblem(t, other, http.StatusUnprocessableEntity, "idempotency-key-reused")
	none := api.Submit(t, slug, "key-1", validBody)
	requireProblem(t, none, http.StatusUnprocessableEntity, "idempotency-key-reused")

	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "application_files"))
}

func TestAdminCVDownloadAudited(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	const name = `Lebenslauf "Ada" – 2026.pdf`
	res := submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart(name, "application/pdf", testkit.SamplePDF()))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	tokenID, viewer := mint(t, api, access.RoleViewer)

	dl := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID+"/cv", "")
	require.Equal(t, http.StatusOK, dl.Status, "body: %s", dl.Body)
	require.Equal(t, testkit.SamplePDF(), dl.Body)
	require.Equal(t, `attachment; filename="Lebenslauf _Ada_ _ 2026.pdf"; filename*=UTF-8''Lebenslauf%20%22Ada%22%20%E2%80%93%202026.pdf`,
		dl.Header.Get("Content-Disposition"))
	_, params, err := mime.ParseMediaType(dl.Header.Get("Content-Disposition"))
	require.NoError(t, err)
	require.Equal(t, name, params["filename"], "a client that reads filename* gets the exact name")

	var n int
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log
		WHERE actor = $1 AND action = 'applications.cv_download' AND target_type = 'application' AND target_id = $2 AND outcome = 'ok'`,
		access.TokenActor(tokenID), r.ID).Scan(&n))
	require.Equal(t, 1, n)

	// A download of an application without a CV is audited as an error.
	missing := "01900000-0000-7000-8000-000000000000"
	requireProblem(t, as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+missing+"/cv", ""), http.StatusNotFound, "not-found")
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log
		WHERE action = 'applications.cv_download' AND target_id = $1 AND outcome = 'error'`, missing).Scan(&n))
	require.Equal(t, 1, n)
}

// The CV is stored in the submit's one transaction: when a later insert
// (the event's) fails, neither the application nor its file is left.
func TestSubmitWithCVFailingLeavesNoFile(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{InjectsFaults: true})
	slug := api.CreatePosting(t, "go-engineer")
	_, err := api.Pool.Exec(t.Context(), `
		CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected failure'; END $$;
		CREATE TRIGGER test_refuse_event BEFORE INSERT ON outbox_events
		FOR EACH ROW EXECUTE FUNCTION test_refuse_event();`)
	require.NoError(t, err)

	res := submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart("cv.pdf", "application/pdf", testkit.SamplePDF()))
	requireProblem(t, res, http.StatusInternalServerError, "internal")
	requireNothingStored(t, api)

	_, err = api.Pool.Exec(t.Context(), `DROP TRIGGER test_refuse_event ON outbox_events`)
	require.NoError(t, err)
	res = submitMultipart(t, api, slug, "key-1", jsonPart(validBody), cvPart("cv.pdf", "application/pdf", testkit.SamplePDF()))
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	require.Equal(t, 1, api.Count(t, "application_files"))
}

// A CV is stored and downloaded under a name ending in the extension of
// the kind its content was recognised as, whatever extension it was sent
// with, and without format characters that reorder what a name shows.
func TestCVNameEndsInRecognisedKind(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	_, viewer := mint(t, api, access.RoleViewer)
	for i, tc := range []struct{ sent, want string }{
		{"cv.html", "cv.txt"},
		{"cv.bat", "cv.txt"},
		{"cv\u202efdp.hta", "cvfdp.txt"},
		{"cv.svg", "cv.txt"},
		{"cv", "cv.txt"},
		{"notes.TXT", "notes.TXT"},
	} {
		res := submitMultipart(t, api, slug, fmt.Sprintf("k-%d", i),
			jsonPart(strings.Replace(validBody, "ada@", fmt.Sprintf("ada%d@", i), 1)),
			cvPart(tc.sent, "text/html", []byte("<script>alert(document.domain)</script>\r\n@echo off\r\n")))
		require.Equal(t, http.StatusCreated, res.Status, "%s: %s", tc.sent, res.Body)
		var r receipt
		require.NoError(t, json.Unmarshal(res.Body, &r))
		var stored string
		require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT filename FROM application_files WHERE application_id = $1`, r.ID).Scan(&stored))
		require.Equal(t, tc.want, stored, tc.sent)
		dl := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID+"/cv", "")
		require.Equal(t, http.StatusOK, dl.Status)
		require.Equal(t, `attachment; filename="`+tc.want+`"; filename*=UTF-8''`+tc.want, dl.Header.Get("Content-Disposition"), tc.sent)
	}
}

// A multipart body cut short, before or inside its closing boundary, is
// malformed (400) and stores nothing, on the JSON API and on the form,
// even when every part it held is complete and valid.
func TestMultipartWithoutClosingBoundaryRefused(t *testing.T) {
	t.Parallel()
	api, slug := cvSetup(t)
	b := newBrowser(t, api)
	hidden := formFields(t, b.get("/jobs/"+slug).Body)
	field := func(name, value string) string {
		return "--x\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
	}
	var form strings.Builder
	for name, value := range fillIn(hidden, "Ada Lovelace", "ada@example.com") {
		form.WriteString(field(name, value[0]))
	}
	for _, end := range []string{"", "--x", "--x-"} {
		res := api.Do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", field("application", validBody)+end,
			"Content-Type", "multipart/form-data; boundary=x", "Idempotency-Key", "key-1")
		requireProblem(t, res, http.StatusBadRequest, "invalid-json")

		req, err := http.NewRequest(http.MethodPost, api.URL+"/jobs/"+slug+"/apply", strings.NewReader(form.String()+end))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		require.Equal(t, http.StatusBadRequest, b.do(req).Status, "end %q", end)
		requireNothingStored(t, api)
	}
	res := api.Do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", field("application", validBody)+"--x--\r\n",
		"Content-Type", "multipart/form-data; boundary=x", "Idempotency-Key", "key-1")
	require.Equal(t, http.StatusCreated, res.Status, "the same body, closed: %s", res.Body)
}

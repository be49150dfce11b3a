package browsertest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/cvfile"
	"github.com/intake/intake/internal/testkit"
)

// cvLimit is the CV limit of these tests' server: small, so a file over
// it is cheap to make.
const cvLimit = 4096

// setupCV is setup with the server's CV limit at cvLimit.
func setupCV(t *testing.T) *bundle {
	t.Helper()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.MaxCVBytes = cvLimit }})
	slug := api.CreatePosting(t, "go-engineer")
	b := &bundle{t: t, api: api, slug: slug, console: &consoleLog{}}
	b.ctx = startBrowser(t)
	require.NoError(t, chromedp.Listen(b.ctx, b.console.record))
	return b
}

// cvFile writes content to a file named name for the browser to upload.
func cvFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, content, 0o600))
	return path
}

// chooseFile sets the form's file input, as choosing a file in the
// browser's picker does.
func (b *bundle) chooseFile(path string) {
	b.t.Helper()
	b.do(chromedp.SetUploadFiles(chromedp.ID("cv"), []string{path}))
}

// requireCVError waits for the form to come back with the CV's error, in
// the summary (which has the focus) and beside the file input, which is
// empty again.
func (b *bundle) requireCVError(want string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".error-summary")))
	require.Equal(b.t, "error-summary", eval[string](b, `document.activeElement.className`), "focus is on the error summary")
	require.Contains(b.t, eval[string](b, `document.querySelector(".error-summary").textContent`), want)
	require.Contains(b.t, eval[string](b, `document.getElementById("cv-error").textContent`), want)
	require.Contains(b.t, eval[string](b, `document.getElementById("cv-error").textContent`), "please choose it again")
	require.Equal(b.t, "true", eval[string](b, `document.getElementById("cv").getAttribute("aria-invalid")`))
	require.Zero(b.t, eval[int](b, `document.getElementById("cv").files.length`))
	require.Equal(b.t, ada.FullName, eval[string](b, `document.getElementById("full_name").value`), "the fields are kept")
}

func TestApplyWithCVThroughTheForm(t *testing.T) {
	t.Parallel()
	b := setupCV(t)
	axe := axeSource(t)

	b.do(chromedp.Navigate(b.api.URL + "/jobs/" + b.slug))
	require.Equal(t, "multipart/form-data", eval[string](b, `document.querySelector("form.apply").enctype`))
	b.requireAccessible(axe, "form with its file input")

	// Too large: refused, the form comes back with the fields kept.
	b.fill(ada)
	b.chooseFile(cvFile(t, "cv.txt", bytes.Repeat([]byte("a"), cvLimit+1)))
	b.submit()
	b.requireCVError("CV must be at most 4 KB.")
	b.requireAccessible(axe, "form with a CV error")
	require.Zero(t, b.applications())

	// Not what its name says: refused the same way.
	b.chooseFile(cvFile(t, "cv.pdf", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")))
	b.submit()
	b.requireCVError("CV says it is a PDF but its content is not.")
	require.Zero(t, b.applications())
	require.Zero(t, b.api.Count(t, "application_files"))

	// A real PDF: received, and stored as the server recognised it.
	b.chooseFile(cvFile(t, "Ada Lovelace.pdf", testkit.SamplePDF()))
	b.submit()
	_, id := b.waitStatusPage()
	var filename, contentType string
	var content []byte
	require.NoError(t, b.api.Pool.QueryRow(context.Background(),
		`SELECT filename, content_type, content FROM application_files WHERE application_id = $1`, id).Scan(&filename, &contentType, &content))
	require.Equal(t, "Ada Lovelace.pdf", filename)
	require.Equal(t, cvfile.PDF, contentType)
	require.Equal(t, testkit.SamplePDF(), content)
	require.Equal(t, ada, b.storedApplication(id))
}

// A file far over the whole body's limit (not only the CV's): the server
// stops reading at the limit and still answers with the form, the fields
// read before the file kept, and the browser shows it.
func TestHugeCVGetsTheFormBack(t *testing.T) {
	t.Parallel()
	b := setupCV(t)
	b.do(chromedp.Navigate(b.api.URL + "/jobs/" + b.slug))
	b.fill(ada)
	b.chooseFile(cvFile(t, "cv.txt", bytes.Repeat([]byte("a"), 8<<20)))
	b.submit()
	b.requireCVError("CV must be at most 4 KB.")
	require.Zero(t, b.applications())
}

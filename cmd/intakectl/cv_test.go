package main

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// submitWithCV posts an application with a CV named filename through the
// JSON API's multipart form and returns its id.
func submitWithCV(t *testing.T, api *testkit.API, slug, filename string, cv []byte) string {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	require.NoError(t, w.WriteField("application", `{"full_name":"Ada Lovelace","email":"ada@example.com"}`))
	fw, err := w.CreateFormFile("cv", filename)
	require.NoError(t, err)
	_, err = fw.Write(cv)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	res := api.Do(t, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", body.String(),
		"Content-Type", w.FormDataContentType(), "Idempotency-Key", "key-1")
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var r struct{ ID string }
	require.NoError(t, json.Unmarshal(res.Body, &r))
	return r.ID
}

// intakectl applications cv writes the stored bytes, never over a file,
// and each download is audited under the operator's name.
func TestApplicationsCV(t *testing.T) {
	api := testkit.StartAPI(t, nil)
	c := newCtl(t, api.DBURL)
	c.ok("postings", "add", "--slug", "go-engineer", "--title", "Go engineer")
	id := submitWithCV(t, api, "go-engineer", "Ada Lovelace.pdf", testkit.SamplePDF())

	require.Contains(t, c.ok("applications", "show", id), "Ada Lovelace.pdf (application/pdf, ")

	out := filepath.Join(t.TempDir(), "downloaded.pdf")
	require.Equal(t, "wrote "+out+" (application/pdf, "+strconv.Itoa(len(testkit.SamplePDF()))+" bytes)\n", c.ok("applications", "cv", id, "--out", out))
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, testkit.SamplePDF(), got)
	_, _, err = c.run("applications", "cv", id, "--out", out)
	require.ErrorIs(t, err, os.ErrExist, "never over an existing file")

	require.Equal(t, string(testkit.SamplePDF()), c.ok("applications", "cv", id, "--out", "-"))

	// By default, the stored name in the current directory.
	t.Chdir(t.TempDir())
	require.True(t, strings.HasPrefix(c.ok("applications", "cv", id), "wrote Ada Lovelace.pdf "))
	got, err = os.ReadFile("Ada Lovelace.pdf")
	require.NoError(t, err)
	require.Equal(t, testkit.SamplePDF(), got)

	_, _, err = c.run("applications", "cv", "00000000-0000-0000-0000-000000000000")
	require.ErrorContains(t, err, "no CV for an application")
	_, _, err = c.run("applications", "cv")
	require.ErrorContains(t, err, "exactly one application id")

	// Four downloads, each audited under cli:<user>: the one refused for
	// the existing file too, as it read the bytes.
	require.Equal(t, 4, auditedCount(t, api.Pool, "applications.cv_download"))
}

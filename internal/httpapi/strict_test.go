package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// A repeated key or a key that only matches a field's name when case is
// ignored is refused, naming the key, and nothing is stored: encoding/json
// would keep the last "email", or take "EMAIL" for "email", so a gateway or
// an audit reading the first or the exact key would see another applicant
// than the one stored and mailed.
func TestSubmitRefusesRepeatedAndCaseVariantKeys(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	tests := []struct {
		name, body, field string
	}{
		{"repeated email", `{"full_name":"A","email":"first@x.io","email":"second@x.io"}`, "email"},
		{"repeated name", `{"full_name":"A","full_name":"B","email":"a@x.io"}`, "full_name"},
		{"repeated links", `{"full_name":"A","email":"a@x.io","links":[],"links":["https://x.io"]}`, "links"},
		{"upper-case key", `{"full_name":"A","EMAIL":"a@x.io"}`, "EMAIL"},
		{"mixed-case key", `{"Full_Name":"A","email":"a@x.io"}`, "Full_Name"},
		{"case variant after the exact key", `{"full_name":"A","email":"a@x.io","Email":"b@x.io"}`, "Email"},
		{"key with a Kelvin sign", "{\"full_name\":\"A\",\"email\":\"a@x.io\",\"lin\u212As\":[]}", "lin\u212As"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := api.Submit(t, slug, "strict-"+string(rune('a'+i)), tt.body)
			p := requireProblem(t, res, http.StatusBadRequest, "invalid-json")
			require.Len(t, p.Errors, 1, "body: %s", res.Body)
			require.Equal(t, tt.field, p.Errors[0].Field)
		})
	}
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
}

// No byte in a path makes a 5xx: a parameter that cannot name anything is
// 404 before any query (a NUL or invalid UTF-8 would reach Postgres), static
// files list no directory, and only files are served.
func TestPathsThatNameNothingAre404(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	form := "full_name=Ada&email=ada%40example.com"
	tests := []struct{ method, path, contentType, body string }{
		{http.MethodGet, "/api/v1/jobs/%00", "", ""},
		{http.MethodGet, "/api/v1/jobs/%ff", "", ""},
		{http.MethodGet, "/api/v1/jobs/Go-Engineer", "", ""},
		{http.MethodGet, "/jobs/%00", "", ""},
		{http.MethodGet, "/jobs/%C0%80", "", ""},
		{http.MethodPost, "/jobs/%00/apply", "application/x-www-form-urlencoded", form},
		{http.MethodPost, "/api/v1/jobs/%00/applications", "application/json", validBody},
		{http.MethodGet, "/api/v1/applications/%00/status?token=x", "", ""},
		{http.MethodGet, "/api/v1/applications/not-a-uuid/status?token=x", "", ""},
		{http.MethodGet, "/api/v1/applications/{00000000-0000-0000-0000-000000000000}/status?token=x", "", ""},
		{http.MethodGet, "/applications/%ff?token=x", "", ""},
		{http.MethodGet, "/static/", "", ""},
		{http.MethodGet, "/static/%ff", "", ""},
		{http.MethodGet, "/static/%00", "", ""},
		{http.MethodGet, "/static/nope.css", "", ""},
		{http.MethodGet, "/static/../go.mod", "", ""},
		{http.MethodGet, "/static/%2e%2e/go.mod", "", ""},
		{http.MethodGet, "/static//style.css", "", ""},
	}
	for _, tt := range tests {
		headers := []string{"Idempotency-Key", "path-" + tt.path}
		if tt.contentType != "" {
			headers = append(headers, "Content-Type", tt.contentType)
		}
		res := api.Do(t, tt.method, tt.path, tt.body, headers...)
		require.Equal(t, http.StatusNotFound, res.Status, "%s %s: %s", tt.method, tt.path, res.Body)
		require.NotContains(t, string(res.Body), `<a href="app.js">`, "%s lists a directory", tt.path)
	}
	require.NotContains(t, api.Logs.String(), `"level":"ERROR"`, "a bad path logged an error")
	require.Zero(t, api.Count(t, "applications"))
	// The real files are still served.
	require.Equal(t, http.StatusOK, api.Do(t, http.MethodGet, "/static/style.css", "").Status)
	require.Equal(t, http.StatusOK, api.Do(t, http.MethodGet, "/jobs/"+slug, "").Status)
}

// HEAD answers wherever GET does, with the same status and headers and no
// body (RFC 9110), so HEAD-based uptime monitors work.
func TestHeadWhereverGet(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	for _, path := range []string{"/", "/jobs/" + slug, "/jobs/nope", "/api/v1/jobs", "/api/v1/jobs/" + slug,
		"/healthz", "/readyz", "/static/style.css", "/static/app.js", "/favicon.ico"} {
		get := api.Do(t, http.MethodGet, path, "")
		head := api.Do(t, http.MethodHead, path, "")
		require.Equal(t, get.Status, head.Status, "HEAD %s", path)
		require.Empty(t, head.Body, "HEAD %s has a body", path)
		for _, h := range []string{"Content-Type", "Cache-Control", "Content-Security-Policy", "X-Content-Type-Options"} {
			require.Equal(t, get.Header.Get(h), head.Header.Get(h), "HEAD %s: %s", path, h)
		}
	}
}

// Nesting is bounded before anything recurses into it: a body of nothing
// but "[" is a 400, not a huge stack (or, with a big body limit, a fatal
// stack overflow no recover can catch).
func TestSubmitRefusesDeepNesting(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	for name, body := range map[string]string{
		"65,000 arrays": `{"links":` + strings.Repeat("[", 65000),
		"33 objects":    `{"full_name":"A","email":"a@x.io","links":` + strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33) + "}",
	} {
		res := api.Submit(t, slug, "deep-"+name, body)
		p := requireProblem(t, res, http.StatusBadRequest, "invalid-json")
		require.Contains(t, p.Detail, "nests deeper", name)
	}
}

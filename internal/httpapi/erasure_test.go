package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/testkit"
)

// The personal values of validBody.
var personal = []string{"Ada Lovelace", "ada@example.com", "+44 20 7946 0000", "I like engines.", "https://example.com/ada"}

// copies counts, for each value, the rows of every table in public (River's
// job table among them, args and errors included) holding it in any text,
// bytea, jsonb or array column, and names where.
func copies(t *testing.T, api *testkit.API, values []string) []string {
	t.Helper()
	rows, err := api.Pool.Query(t.Context(), `
		SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public'
		  AND data_type IN ('text', 'character varying', 'character', 'bytea', 'jsonb', 'json', 'ARRAY')`)
	require.NoError(t, err)
	type col struct{ table, column, typ string }
	var cols []col
	for rows.Next() {
		var c col
		require.NoError(t, rows.Scan(&c.table, &c.column, &c.typ))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, cols)
	var found []string
	for _, c := range cols {
		expr := fmt.Sprintf("position(lower($1) in lower(%q::text)) > 0", c.column)
		if c.typ == "bytea" {
			expr = fmt.Sprintf("position(convert_to($1, 'UTF8') in %q) > 0", c.column)
		}
		for _, v := range values {
			var n int
			require.NoError(t, api.Pool.QueryRow(t.Context(),
				fmt.Sprintf("SELECT count(*) FROM %q WHERE %s", c.table, expr), v).Scan(&n))
			if n > 0 {
				found = append(found, fmt.Sprintf("%s.%s holds %q", c.table, c.column, v))
			}
		}
	}
	return found
}

func statusPath(t *testing.T, statusURL string) string {
	t.Helper()
	u, err := url.Parse(statusURL)
	require.NoError(t, err)
	return u.RequestURI()
}

func TestEraseApplicationRemovesEveryCopy(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := "go-engineer"
	_, err := api.Store.CreatePosting(t.Context(), application.NewPosting{Slug: slug, Title: "Go engineer", Questions: []application.Question{
		{Key: "first_program", Label: "Your first program?", Kind: application.KindShortText},
	}})
	require.NoError(t, err)
	// With a CV and an answer: the file's bytes, its name and the answer
	// are personal data too.
	const cvText, cvName = "Ada Augusta, Countess of Lovelace: notes on the Analytical Engine", "ada-lovelace-cv.txt"
	const answer = "Bernoulli numbers on the engine"
	body := strings.TrimSuffix(validBody, "}") + `,"answers":{"first_program":"` + answer + `"}}`
	res := submitMultipart(t, api, slug, "key-1", jsonPart(body), cvPart(cvName, "text/plain", []byte(cvText)))
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	personal := append([]string{cvText, cvName, answer}, personal...)
	// The confirmation job the relay would make, with an error a worker
	// left on it.
	client, err := river.NewClient(riverpgxv5.New(api.Pool), &river.Config{})
	require.NoError(t, err)
	ins, err := client.Insert(t.Context(), job.ConfirmationEmailArgs{ApplicationID: r.ID}, nil)
	require.NoError(t, err)
	_, err = api.Pool.Exec(t.Context(), `UPDATE river_job SET state = 'retryable', attempt = 1,
		errors = ARRAY[jsonb_build_object('at', now(), 'attempt', 1, 'error', 'smtp temporary failure: dial: reply code 421')]
		WHERE id = $1`, ins.Job.ID)
	require.NoError(t, err)
	_, admin := mint(t, api, access.RoleAdmin)

	require.NotEmpty(t, copies(t, api, personal), "the grep finds the stored application")
	apiStatus := statusPath(t, r.StatusURL)
	page := strings.Replace(apiStatus, "/api/v1/applications/"+r.ID+"/status", "/applications/"+r.ID, 1)
	require.Equal(t, http.StatusOK, api.Do(t, http.MethodGet, apiStatus, "").Status)

	res = as(t, api, admin, http.MethodDelete, "/api/v1/admin/applications/"+r.ID, "")
	require.Equal(t, http.StatusNoContent, res.Status, string(res.Body))
	require.Empty(t, copies(t, api, personal), "no copy of the personal data is left")
	// Repeating it is harmless: the same answer, nothing more changes.
	res = as(t, api, admin, http.MethodDelete, "/api/v1/admin/applications/"+r.ID, "")
	require.Equal(t, http.StatusNoContent, res.Status)
	require.Equal(t, http.StatusNotFound, as(t, api, admin, http.MethodDelete, "/api/v1/admin/applications/00000000-0000-4000-8000-000000000000", "").Status)

	// The skeleton stays, so counts stay right; analytics' event too.
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "outbox_events"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
	require.Zero(t, api.Count(t, "application_files"))
	var state, class string
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT state, last_error_class FROM deliveries WHERE application_id = $1`, r.ID).Scan(&state, &class))
	require.Equal(t, []string{"cancelled", "erased"}, []string{state, class})
	var jobState string
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT state FROM river_job WHERE id = $1`, ins.Job.ID).Scan(&jobState))
	require.Equal(t, "cancelled", jobState)

	res = as(t, api, admin, http.MethodGet, "/api/v1/admin/applications/"+r.ID, "")
	require.Equal(t, http.StatusOK, res.Status)
	var rec struct {
		ID         string         `json:"id"`
		Job        string         `json:"job"`
		ReceivedAt time.Time      `json:"received_at"`
		ErasedAt   *time.Time     `json:"erased_at"`
		Email      string         `json:"email"`
		Phone      *string        `json:"phone"`
		Answers    map[string]any `json:"answers"`
		Confirm    struct {
			State string `json:"state"`
		} `json:"confirmation_email"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &rec))
	require.Equal(t, r.ID, rec.ID)
	require.Equal(t, slug, rec.Job)
	require.True(t, rec.ReceivedAt.Equal(r.ReceivedAt))
	require.NotNil(t, rec.ErasedAt)
	require.Equal(t, "erased+"+r.ID+"@invalid", rec.Email)
	require.Nil(t, rec.Phone)
	require.NotNil(t, rec.Answers)
	require.Empty(t, rec.Answers)
	require.Equal(t, "cancelled", rec.Confirm.State)
	require.Contains(t, string(res.Body), `"cv":null`)
	requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications/"+r.ID+"/cv", ""), http.StatusNotFound, "not-found")

	// The applicant's link answers 410, in the API and on the page.
	res = api.Do(t, http.MethodGet, apiStatus, "")
	requireProblem(t, res, http.StatusGone, "erased")
	res = api.Do(t, http.MethodGet, page, "")
	require.Equal(t, http.StatusGone, res.Status)
	require.Contains(t, string(res.Body), "This application was deleted")

	// The person may apply again to the same posting; the list shows both.
	res = api.Submit(t, slug, "key-2", validBody)
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	res = as(t, api, admin, http.MethodGet, "/api/v1/admin/applications?job="+slug, "")
	var list struct {
		Applications []struct {
			ID string `json:"id"`
		} `json:"applications"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &list))
	require.Len(t, list.Applications, 2)

	// The audit rows say who erased what, never the data.
	var erases int
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log
		WHERE action = 'applications.erase' AND target_type = 'application' AND target_id = $1 AND outcome = 'ok' AND actor LIKE 'token:%'`, r.ID).Scan(&erases))
	require.Equal(t, 2, erases)
}

func TestEraseByEmailAcrossPostings(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	first := api.CreatePosting(t, "go-engineer")
	second := api.CreatePosting(t, "sre")
	require.Equal(t, http.StatusCreated, api.Submit(t, first, "k1", validBody).Status)
	require.Equal(t, http.StatusCreated, api.Submit(t, second, "k2", strings.Replace(validBody, "ada@example.com", "ADA@Example.com", 1)).Status)
	other := `{"full_name":"Grace Hopper","email":"grace@example.com"}`
	require.Equal(t, http.StatusCreated, api.Submit(t, first, "k3", other).Status)
	_, admin := mint(t, api, access.RoleAdmin)
	_, viewer := mint(t, api, access.RoleViewer)

	body := `{"email":" Ada@EXAMPLE.com "}`
	res := as(t, api, viewer, http.MethodPost, "/api/v1/admin/erasures", body)
	requireProblem(t, res, http.StatusForbidden, "forbidden")
	require.Equal(t, http.StatusForbidden, as(t, api, viewer, http.MethodDelete, "/api/v1/admin/applications/00000000-0000-4000-8000-000000000000", "").Status)
	require.NotEmpty(t, copies(t, api, personal))

	res = as(t, api, admin, http.MethodPost, "/api/v1/admin/erasures", body)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	require.JSONEq(t, `{"erased":2}`, string(res.Body))
	require.Empty(t, copies(t, api, append(personal, "ADA@Example.com")))
	require.Len(t, copies(t, api, []string{"Grace Hopper", "grace@example.com"}), 3,
		"another person's application is untouched (full_name, email, email_normalized)")
	require.Equal(t, 3, api.Count(t, "applications"))

	// Again: harmless; nothing holds the address any more.
	res = as(t, api, admin, http.MethodPost, "/api/v1/admin/erasures", body)
	require.Equal(t, http.StatusOK, res.Status)
	require.JSONEq(t, `{"erased":0}`, string(res.Body))

	res = as(t, api, admin, http.MethodPost, "/api/v1/admin/erasures", `{"email":"  "}`)
	p := requireProblem(t, res, http.StatusUnprocessableEntity, "validation")
	require.Equal(t, "email", p.Errors[0].Field)

	var perApp, requests int
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT count(*) FROM audit_log WHERE action = 'applications.erase' AND outcome = 'ok'`).Scan(&perApp))
	require.Equal(t, 2, perApp)
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT count(*) FROM audit_log WHERE action = 'erasures.create' AND outcome = 'ok' AND detail IN ('erased 2', 'erased 0')`).Scan(&requests))
	require.Equal(t, 2, requests)
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT count(*) FROM audit_log WHERE action = 'erasures.create' AND outcome = 'denied'`).Scan(&requests))
	require.Equal(t, 1, requests, "the viewer's refusal is audited")
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/testkit"
)

// GET /api/v1/admin/reports/{week}: the stored report of a past week
// (200, audited as reports.read), 400 naming week for a malformed one, 404
// for a week with nothing in it and for one not started. The roles are in
// TestAdminRoutesAuthMatrix.
func TestAdminReport(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
	week, err := application.ParseWeek("2026-W40")
	require.NoError(t, err)
	_, err = api.Pool.Exec(t.Context(), `UPDATE applications SET received_at = $1`, week.Start().Add(time.Hour))
	require.NoError(t, err)
	_, err = api.Pool.Exec(t.Context(), `UPDATE postings SET created_at = $1`, week.Start())
	require.NoError(t, err)
	built, err := api.Store.BuildReport(t.Context(), week, week.End())
	require.NoError(t, err)
	_, err = api.Store.SaveReport(t.Context(), built)
	require.NoError(t, err)
	tokenID, viewer := mint(t, api, access.RoleViewer)

	res := as(t, api, viewer, http.MethodGet, "/api/v1/admin/reports/2026-W40", "")
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var got struct {
		Week     string `json:"week"`
		Stored   bool   `json:"stored"`
		Postings []struct {
			Slug     string `json:"slug"`
			Received int    `json:"received"`
		} `json:"postings"`
		Totals struct {
			Received int `json:"received"`
		} `json:"totals"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &got))
	require.Equal(t, "2026-W40", got.Week)
	require.True(t, got.Stored)
	require.Equal(t, slug, got.Postings[0].Slug)
	require.Equal(t, 1, got.Postings[0].Received)
	require.Equal(t, 1, got.Totals.Received)
	require.NotContains(t, string(res.Body), "@", "no address in a report")

	p := requireProblem(t, as(t, api, viewer, http.MethodGet, "/api/v1/admin/reports/2026-40", ""), http.StatusBadRequest, "invalid-parameter")
	require.Equal(t, "week", p.Errors[0].Field)
	p = requireProblem(t, as(t, api, viewer, http.MethodGet, "/api/v1/admin/reports/2026-W54", ""), http.StatusBadRequest, "invalid-parameter")
	require.Equal(t, "week", p.Errors[0].Field)
	requireProblem(t, as(t, api, viewer, http.MethodGet, "/api/v1/admin/reports/2026-W39", ""), http.StatusNotFound, "not-found")
	future := application.WeekOf(time.Now().AddDate(0, 0, 14)).String()
	requireProblem(t, as(t, api, viewer, http.MethodGet, "/api/v1/admin/reports/"+future, ""), http.StatusNotFound, "not-found")

	var audited int
	require.NoError(t, api.Pool.QueryRow(t.Context(), `
		SELECT count(*) FROM audit_log
		WHERE actor = $1 AND action = 'reports.read' AND target_type = 'report' AND target_id = '2026-W40' AND outcome = 'ok'`,
		access.TokenActor(tokenID)).Scan(&audited))
	require.Equal(t, 1, audited)
}

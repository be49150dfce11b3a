package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// River UI is on the worker's ops listener behind the admin tokens: no
// token or a wrong one is 401 with a Basic challenge, a viewer reads but
// cannot act, an admin acts, a cross-site action is refused, and every
// action and refusal is in the audit log.
func TestRiverUIBehindTheAdminTokens(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	w := startWorker(t, api.DBURL, testkit.StartSMTP(t), nil)
	store := postgres.NewStore(api.Pool)
	cli := access.Caller{Actor: access.CLIActor("test"), Role: access.RoleAdmin}
	_, viewer, err := store.CreateToken(context.Background(), cli, access.NewTokenSpec{Name: "viewer", Role: access.RoleViewer})
	require.NoError(t, err)
	_, admin, err := store.CreateToken(context.Background(), cli, access.NewTokenSpec{Name: "admin", Role: access.RoleAdmin})
	require.NoError(t, err)

	do := func(method, path, token string, headers ...string) int {
		t.Helper()
		var body *strings.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"ids":["999999"]}`)
		} else {
			body = strings.NewReader("")
		}
		req, err := http.NewRequest(method, "http://"+w.opsAddr+path, body)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.SetBasicAuth("operator", token)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
		}
		return resp.StatusCode
	}

	require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, "/riverui/", ""))
	require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, "/riverui/api/jobs", "intk_not-a-token"))
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/riverui/", viewer))
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/riverui/api/jobs?state=available", viewer))
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "/riverui/api/jobs/cancel", viewer), "viewers read, they do not act")
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "/riverui/api/jobs/cancel", admin, "Sec-Fetch-Site", "cross-site"))
	require.Less(t, do(http.MethodPost, "/riverui/api/jobs/cancel", admin), 500, "an admin acts")

	var rows []string
	r, err := api.Pool.Query(context.Background(), `SELECT actor || ' ' || action || ' ' || target_id || ' ' || outcome FROM audit_log WHERE target_type = 'riverui' ORDER BY id`)
	require.NoError(t, err)
	for r.Next() {
		var s string
		require.NoError(t, r.Scan(&s))
		rows = append(rows, s)
	}
	require.NoError(t, r.Err())
	require.Len(t, rows, 4, "the wrong token, the viewer's and the cross-site refusals, the admin's action: %v", rows)
	require.Equal(t, "anonymous riverui.read GET /riverui/api/jobs denied", rows[0])
	require.Contains(t, rows[1], " riverui.act POST /riverui/api/jobs/cancel denied")
	require.Contains(t, rows[2], " riverui.act POST /riverui/api/jobs/cancel denied")
	require.Contains(t, rows[3], " riverui.act POST /riverui/api/jobs/cancel ")
	require.NotContains(t, rows[3], "denied")
}

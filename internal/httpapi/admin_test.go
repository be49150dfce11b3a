package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/httpapi"
	"github.com/intake/intake/internal/testkit"
)

var operator = access.Caller{Actor: access.CLIActor("test")}

// mint creates a token the way intakectl does and returns its id and text.
func mint(t *testing.T, api *testkit.API, role access.Role) (string, string) {
	t.Helper()
	tok, secret, err := api.Store.CreateToken(t.Context(), operator, access.NewTokenSpec{Name: "test " + string(role), Role: role})
	require.NoError(t, err)
	return tok.ID, secret
}

// as sends a request with an Authorization: Bearer header (none when
// token is empty).
func as(t *testing.T, api *testkit.API, token, method, path, body string) testkit.Response {
	t.Helper()
	headers := []string{"Content-Type", "application/json"}
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return api.Do(t, method, path, body, headers...)
}

// adminRule is what one admin route needs and answers its admin.
type adminRule struct {
	role     access.Role
	okStatus int
}

// Every route under /api/v1/admin, with the role it needs. A route added to
// routes.go without a line here fails TestAdminRoutesAuthMatrix.
var adminRules = map[string]adminRule{
	"GET /api/v1/admin/applications":      {access.RoleViewer, http.StatusOK},
	"HEAD /api/v1/admin/applications":     {access.RoleViewer, http.StatusOK},
	"GET /api/v1/admin/applications/:id":  {access.RoleViewer, http.StatusOK},
	"HEAD /api/v1/admin/applications/:id": {access.RoleViewer, http.StatusOK},
	// The matrix's application has no CV: a viewer may ask, and hears 404.
	"GET /api/v1/admin/applications/:id/cv":  {access.RoleViewer, http.StatusNotFound},
	"HEAD /api/v1/admin/applications/:id/cv": {access.RoleViewer, http.StatusNotFound},
	"DELETE /api/v1/admin/applications/:id":  {access.RoleAdmin, http.StatusNoContent},
	"POST /api/v1/admin/erasures":            {access.RoleAdmin, http.StatusOK},
	"POST /api/v1/admin/jobs":                {access.RoleAdmin, http.StatusCreated},
	"PATCH /api/v1/admin/jobs/:slug":         {access.RoleAdmin, http.StatusOK},
	"GET /api/v1/admin/tokens":               {access.RoleAdmin, http.StatusOK},
	"HEAD /api/v1/admin/tokens":              {access.RoleAdmin, http.StatusOK},
	"POST /api/v1/admin/tokens":              {access.RoleAdmin, http.StatusCreated},
	"DELETE /api/v1/admin/tokens/:id":        {access.RoleAdmin, http.StatusOK},
	"GET /api/v1/admin/reports/:week":        {access.RoleViewer, http.StatusOK},
	"HEAD /api/v1/admin/reports/:week":       {access.RoleViewer, http.StatusOK},
	"GET /api/v1/admin/audit":                {access.RoleAdmin, http.StatusOK},
	"HEAD /api/v1/admin/audit":               {access.RoleAdmin, http.StatusOK},
}

// adminRoutes lists the admin routes from the router itself.
func adminRoutes(t *testing.T) []string {
	t.Helper()
	e := httpapi.NewServer(httpapi.Deps{Config: testkit.DefaultConfig(t)})
	var routes []string
	for _, r := range e.Routes() {
		// Group middleware makes echo add catch-all routes for unknown paths.
		if strings.HasPrefix(r.Path, "/api/v1/admin") && r.Method != "echo_route_not_found" {
			routes = append(routes, r.Method+" "+r.Path)
		}
	}
	return routes
}

func TestAdminRoutesAuthMatrix(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	res := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, res.Status)
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))

	_, viewer := mint(t, api, access.RoleViewer)
	_, admin := mint(t, api, access.RoleAdmin)
	revokedID, revoked := mint(t, api, access.RoleAdmin)
	_, err := api.Store.RevokeToken(t.Context(), operator, revokedID)
	require.NoError(t, err)
	expiredID, expired := mint(t, api, access.RoleAdmin)
	_, err = api.Pool.Exec(t.Context(), `UPDATE admin_tokens SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE id = $1`, expiredID)
	require.NoError(t, err)
	// The right shape with a wrong checksum, and a right checksum never minted.
	flipped := byte('a')
	if admin[10] == 'a' {
		flipped = 'b'
	}
	badChecksum := admin[:10] + string(flipped) + admin[11:]
	require.False(t, access.CheckTokenFormat(badChecksum))
	unknown := access.NewToken()

	// This week has the application above, so its report answers 200.
	thisWeek := application.WeekOf(time.Now()).String()
	routes := adminRoutes(t)
	require.NotEmpty(t, routes)
	var unauthorizedBody []byte
	denied := 0
	for _, route := range routes {
		rule, ok := adminRules[route]
		require.True(t, ok, "admin route %s has no rule in adminRules: say which role it needs", route)
		method, pattern, _ := strings.Cut(route, " ")

		// Each call gets fresh targets, so the admin's call can succeed.
		request := func(token string) testkit.Response {
			victimID, _ := mint(t, api, access.RoleViewer)
			path := strings.NewReplacer(":id", r.ID, ":slug", slug, ":week", thisWeek).Replace(pattern)
			if strings.HasPrefix(pattern, "/api/v1/admin/tokens/") {
				path = strings.Replace(pattern, ":id", victimID, 1)
			}
			body := ""
			switch route {
			case "POST /api/v1/admin/jobs":
				body = fmt.Sprintf(`{"slug":"job-%d","title":"A job"}`, time.Now().UnixNano())
			case "PATCH /api/v1/admin/jobs/:slug":
				body = `{"title":"Go engineer, renamed"}`
			case "POST /api/v1/admin/tokens":
				body = `{"name":"ci","role":"viewer"}`
			case "POST /api/v1/admin/erasures":
				body = `{"email":"nobody@example.com"}`
			}
			res := as(t, api, token, method, path, body)
			require.Equal(t, "no-store", res.Header.Get("Cache-Control"), route)
			return res
		}
		for name, token := range map[string]string{
			"none": "", "malformed": "intk_nope", "bad checksum": badChecksum, "unknown": unknown,
			"revoked": revoked, "expired": expired, "not bearer": "",
		} {
			var res testkit.Response
			if name == "not bearer" {
				res = api.Do(t, method, strings.NewReplacer(":id", r.ID, ":slug", slug, ":week", thisWeek).Replace(pattern), "", "Authorization", "Basic "+admin)
			} else {
				res = request(token)
			}
			require.Equal(t, http.StatusUnauthorized, res.Status, "%s with %s token: %s", route, name, res.Body)
			require.Equal(t, `Bearer realm="intake-admin"`, res.Header.Get("WWW-Authenticate"), route)
			denied++
			if method == http.MethodHead {
				continue
			}
			if unauthorizedBody == nil {
				unauthorizedBody = res.Body
			}
			require.Equal(t, string(unauthorizedBody), string(res.Body), "one body for every 401 (%s, %s)", route, name)
		}

		res := request(viewer)
		if rule.role == access.RoleViewer {
			require.Equal(t, rule.okStatus, res.Status, "%s as viewer: %s", route, res.Body)
		} else {
			require.Equal(t, http.StatusForbidden, res.Status, "%s as viewer: %s", route, res.Body)
		}
		res = request(admin)
		require.Equal(t, rule.okStatus, res.Status, "%s as admin: %s", route, res.Body)
	}
	// Every rule names a route that exists.
	require.Len(t, adminRules, len(routes))

	var audited int
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT count(*) FROM audit_log WHERE actor = 'anonymous' AND action = 'auth.denied' AND outcome = 'denied'`).Scan(&audited))
	require.Equal(t, denied, audited, "every failed authentication is audited")
}

// An unknown path under /api/v1/admin answers 401 too: no probing for
// routes without a token.
func TestAdminUnknownPathNeedsToken(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	res := as(t, api, "", http.MethodGet, "/api/v1/admin/secrets", "")
	requireProblem(t, res, http.StatusUnauthorized, "unauthorized")
	_, admin := mint(t, api, access.RoleAdmin)
	requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/secrets", ""), http.StatusNotFound, "not-found")
}

func TestAdminPrivilegeEscalation(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	viewerID, viewer := mint(t, api, access.RoleViewer)
	_, admin := mint(t, api, access.RoleAdmin)
	tokensBefore := api.Count(t, "admin_tokens")

	// A viewer mints nothing, not even a viewer.
	for _, role := range []string{"viewer", "admin"} {
		res := as(t, api, viewer, http.MethodPost, "/api/v1/admin/tokens", `{"name":"mine","role":"`+role+`"}`)
		requireProblem(t, res, http.StatusForbidden, "forbidden")
	}
	require.Equal(t, tokensBefore, api.Count(t, "admin_tokens"))

	// A viewer changes no posting and revokes no token, its own included.
	requireProblem(t, as(t, api, viewer, http.MethodPatch, "/api/v1/admin/jobs/"+slug, `{"status":"closed"}`), http.StatusForbidden, "forbidden")
	p, err := api.Store.Posting(t.Context(), slug)
	require.NoError(t, err)
	require.Equal(t, "open", string(p.Status))
	requireProblem(t, as(t, api, viewer, http.MethodDelete, "/api/v1/admin/tokens/"+viewerID, ""), http.StatusForbidden, "forbidden")

	// No way to raise a role: no route changes a token, and no role above
	// admin exists.
	for _, method := range []string{http.MethodPatch, http.MethodPut, http.MethodPost} {
		requireProblem(t, as(t, api, admin, method, "/api/v1/admin/tokens/"+viewerID, `{"role":"admin"}`), http.StatusNotFound, "not-found")
	}
	for _, body := range []string{`{"name":"x","role":"owner"}`, `{"name":"x","role":"Admin"}`, `{"name":"x","role":""}`} {
		p := requireProblem(t, as(t, api, admin, http.MethodPost, "/api/v1/admin/tokens", body), http.StatusUnprocessableEntity, "validation")
		require.Equal(t, "role", p.Errors[0].Field)
	}
	requireProblem(t, as(t, api, admin, http.MethodPost, "/api/v1/admin/tokens", `{"name":"x","role":"viewer","role":"admin"}`), http.StatusBadRequest, "invalid-json")
	var role string
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT role FROM admin_tokens WHERE id = $1`, viewerID).Scan(&role))
	require.Equal(t, "viewer", role)

	// Below the routes, the store refuses a mint above the caller's role.
	_, _, err = api.Store.CreateToken(t.Context(), access.Caller{Actor: access.TokenActor(viewerID), TokenID: viewerID, Role: access.RoleViewer},
		access.NewTokenSpec{Name: "escalate", Role: access.RoleAdmin})
	require.ErrorIs(t, err, access.ErrRoleTooHigh)
	require.Equal(t, tokensBefore, api.Count(t, "admin_tokens"))

	var deniedRows int
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT count(*) FROM audit_log WHERE actor = $1 AND outcome = 'denied'`, access.TokenActor(viewerID)).Scan(&deniedRows))
	require.Equal(t, 5, deniedRows, "two mints, a PATCH, a DELETE and the store's refusal are audited")
}

// A request that authenticated before its token's revocation committed and
// writes after it: the write's transaction re-checks the token under a
// share lock, so it is refused and nothing changes.
func TestAdminRevocationRacesInFlightRequest(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	adminID, admin := mint(t, api, access.RoleAdmin)
	// A first use records last_used_at, so the racing request's
	// authentication writes nothing (and waits for nothing).
	require.Equal(t, http.StatusOK, as(t, api, admin, http.MethodGet, "/api/v1/admin/tokens", "").Status)

	// The revocation, held open: the token row is locked and still valid
	// to everyone else.
	tx, err := api.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `UPDATE admin_tokens SET revoked_at = now() WHERE id = $1`, adminID)
	require.NoError(t, err)

	done := make(chan testkit.Response, 1)
	go func() {
		done <- as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/"+slug, `{"title":"Written after the revocation"}`)
	}()
	// The request authenticated (its read sees the old row) and now waits
	// for the revocation's lock inside its write transaction (or, without
	// that lock, has already written).
	var res testkit.Response
	require.Eventually(t, func() bool {
		select {
		case res = <-done:
			return true
		default:
		}
		var waiting int
		err := api.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%TokenLockValid%'`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 2*time.Second, 5*time.Millisecond)
	require.NoError(t, tx.Commit(t.Context()))

	if res.Status == 0 {
		res = <-done
	}
	requireProblem(t, res, http.StatusUnauthorized, "unauthorized")
	p, err := api.Store.Posting(t.Context(), slug)
	require.NoError(t, err)
	require.Equal(t, "Posting go-engineer", p.Title, "no write commits under a revoked token")
	var outcome string
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT outcome FROM audit_log WHERE actor = $1 AND action = 'jobs.update'`, access.TokenActor(adminID)).Scan(&outcome))
	require.Equal(t, "denied", outcome)

	// And every request after the commit is refused.
	requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications", ""), http.StatusUnauthorized, "unauthorized")
}

// An admin change cannot commit without its audit row: when the audit
// insert fails, the change is rolled back with it.
func TestAdminChangeNeedsItsAuditRow(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{InjectsFaults: true})
	slug := api.CreatePosting(t, "go-engineer")
	_, admin := mint(t, api, access.RoleAdmin)
	_, err := api.Pool.Exec(t.Context(), `ALTER TABLE audit_log ADD CONSTRAINT test_refuses CHECK (action <> 'jobs.update') NOT VALID`)
	require.NoError(t, err)

	res := as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/"+slug, `{"status":"closed"}`)
	requireProblem(t, res, http.StatusInternalServerError, "internal")
	p, err := api.Store.Posting(t.Context(), slug)
	require.NoError(t, err)
	require.Equal(t, "open", string(p.Status))
}

func TestAdminFailedAuthenticationsRateLimited(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.AdminAuthFailures = 3 }})
	_, admin := mint(t, api, access.RoleAdmin)

	// Good tokens spend nothing of the budget.
	for range 5 {
		require.Equal(t, http.StatusOK, as(t, api, admin, http.MethodGet, "/api/v1/admin/tokens", "").Status)
	}
	for range 3 {
		requireProblem(t, as(t, api, access.NewToken(), http.MethodGet, "/api/v1/admin/tokens", ""), http.StatusUnauthorized, "unauthorized")
	}
	res := as(t, api, access.NewToken(), http.MethodGet, "/api/v1/admin/tokens", "")
	requireProblem(t, res, http.StatusTooManyRequests, "rate-limited")
	require.Equal(t, "20", res.Header.Get("Retry-After"))
	// Over the budget the address is refused before any token is checked.
	requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/tokens", ""), http.StatusTooManyRequests, "rate-limited")
}

func TestAdminTokenLastUsedWrittenOncePerMinute(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	id, admin := mint(t, api, access.RoleAdmin)
	lastUsed := func() *time.Time {
		var at *time.Time
		require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT last_used_at FROM admin_tokens WHERE id = $1`, id).Scan(&at))
		return at
	}
	require.Nil(t, lastUsed())
	require.Equal(t, http.StatusOK, as(t, api, admin, http.MethodGet, "/api/v1/admin/tokens", "").Status)
	first := lastUsed()
	require.NotNil(t, first)
	require.Equal(t, http.StatusOK, as(t, api, admin, http.MethodGet, "/api/v1/admin/tokens", "").Status)
	require.Equal(t, *first, *lastUsed(), "a second use within the minute writes nothing")
}

type applicationsPage struct {
	Applications []struct {
		ID  string `json:"id"`
		Job string `json:"job"`
	} `json:"applications"`
	NextCursor *string `json:"next_cursor"`
}

func listPage(t *testing.T, api *testkit.API, token, query string) applicationsPage {
	t.Helper()
	res := as(t, api, token, http.MethodGet, "/api/v1/admin/applications?"+query, "")
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var p applicationsPage
	require.NoError(t, json.Unmarshal(res.Body, &p))
	return p
}

func TestAdminApplicationsPagination(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	a := api.CreatePosting(t, "go-engineer")
	b := api.CreatePosting(t, "rust-engineer")
	// One statement: all 25 share received_at, so only the id orders them.
	testkit.Seed(t, api.Pool, a, 25)
	testkit.Seed(t, api.Pool, b, 5)
	_, viewer := mint(t, api, access.RoleViewer)

	var want []string
	rows, err := api.Pool.Query(t.Context(), `SELECT a.id::text FROM applications a JOIN postings p ON p.id = a.posting_id
		WHERE p.slug = $1 ORDER BY a.received_at DESC, a.id DESC`, a)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		want = append(want, id)
	}
	require.NoError(t, rows.Err())

	var got []string
	query := "job=" + a + "&limit=10"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		p := listPage(t, api, viewer, query)
		for _, app := range p.Applications {
			require.Equal(t, a, app.Job)
			got = append(got, app.ID)
		}
		// Inserts while paging land before the first page, never inside
		// the pages still to come.
		res := api.Submit(t, a, uuid.NewString(), fmt.Sprintf(`{"full_name":"New %d","email":"new%d@example.com"}`, pages, pages))
		require.Equal(t, http.StatusCreated, res.Status)
		if p.NextCursor == nil {
			break
		}
		query = "job=" + a + "&limit=10&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	require.Equal(t, want, got, "every application once, newest first")

	all := listPage(t, api, viewer, "limit=100")
	require.Len(t, all.Applications, 25+5+3)
	require.Nil(t, all.NextCursor)
}

func TestAdminPaginationAttacks(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	a := api.CreatePosting(t, "go-engineer")
	b := api.CreatePosting(t, "rust-engineer")
	testkit.Seed(t, api.Pool, a, 5)
	testkit.Seed(t, api.Pool, b, 5)
	_, admin := mint(t, api, access.RoleAdmin)

	for _, limit := range []string{"0", "101", "-1", "ten", "1e1", "+5", " 5", "1000000000000000000000", "5.0"} {
		p := requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications?limit="+url.QueryEscape(limit), ""),
			http.StatusBadRequest, "invalid-parameter")
		require.Equal(t, "limit", p.Errors[0].Field, "limit=%q", limit)
	}

	cursor := *listPage(t, api, admin, "job="+a+"&limit=2").NextCursor
	payload, tag, _ := strings.Cut(cursor, ".")
	forgedPosition := func(position string) string {
		return base64URL(position) + "." + tag
	}
	auditRes := as(t, api, admin, http.MethodGet, "/api/v1/admin/audit?limit=1", "")
	require.Equal(t, http.StatusOK, auditRes.Status)
	var auditPage struct {
		NextCursor *string `json:"next_cursor"`
	}
	require.NoError(t, json.Unmarshal(auditRes.Body, &auditPage))
	require.NotNil(t, auditPage.NextCursor)

	attacks := map[string]string{
		"forged":                   base64URL("a1 0 00000000-0000-0000-0000-000000000000") + ".AAAAAAAAAAAAAAAAAAAAAA",
		"forged position":          forgedPosition("a1 9999999999999999 ffffffff-ffff-ffff-ffff-ffffffffffff"),
		"truncated":                cursor[:len(cursor)-3],
		"truncated payload":        payload[:len(payload)/2] + "." + tag,
		"no tag":                   payload,
		"empty tag":                payload + ".",
		"not base64":               "!!!." + tag,
		"dots":                     "....",
		"NUL":                      "\x00",
		"long":                     strings.Repeat("A", 5000) + "." + tag,
		"other list's cursor":      *auditPage.NextCursor,
		"invalid UTF-8 in payload": base64URL("a1 \xff\xfe") + "." + tag,
	}
	for name, c := range attacks {
		p := requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications?job="+a+"&cursor="+url.QueryEscape(c), ""),
			http.StatusBadRequest, "invalid-parameter")
		require.Equal(t, "cursor", p.Errors[0].Field, name)
	}
	// Replayed for another posting, or without the filter: refused, never
	// the other posting's rows.
	for _, query := range []string{"job=" + b, ""} {
		p := requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications?"+query+"&cursor="+url.QueryEscape(cursor), ""),
			http.StatusBadRequest, "invalid-parameter")
		require.Equal(t, "cursor", p.Errors[0].Field)
	}
	// The audit list's cursor is bound to its filters the same way.
	p := requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/audit?actor=anonymous&cursor="+url.QueryEscape(*auditPage.NextCursor), ""),
		http.StatusBadRequest, "invalid-parameter")
	require.Equal(t, "cursor", p.Errors[0].Field)

	// Bad filters are named too.
	p = requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications?job=Not%20A%20Slug", ""), http.StatusBadRequest, "invalid-parameter")
	require.Equal(t, "job", p.Errors[0].Field)
	requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/applications?job=no-such-job", ""), http.StatusNotFound, "not-found")
	var outcome string
	require.NoError(t, api.Pool.QueryRow(t.Context(),
		`SELECT outcome FROM audit_log WHERE action = 'applications.list' AND target_id = 'no-such-job'`).Scan(&outcome))
	require.Equal(t, "error", outcome)
	p = requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/audit?since=yesterday", ""), http.StatusBadRequest, "invalid-parameter")
	require.Equal(t, "since", p.Errors[0].Field)
	p = requireProblem(t, as(t, api, admin, http.MethodGet, "/api/v1/admin/audit?actor=%00", ""), http.StatusBadRequest, "invalid-parameter")
	require.Equal(t, "actor", p.Errors[0].Field)
}

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Personal data read back through the admin API reaches neither the audit
// log nor the API's logs; neither does the token.
func TestAdminReadsLeaveNoPersonalDataInAuditOrLogs(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	personal := []string{"Hedy Kiesler Lamarr", "hedy.lamarr@frequency.example", "+43 1 555 0199", "Frequency hopping, 1942", "https://hedy.example/patent"}
	res := api.Submit(t, slug, "key-1", fmt.Sprintf(`{"full_name":%q,"email":%q,"phone":%q,"cover_letter":%q,"links":[%q]}`,
		personal[0], personal[1], personal[2], personal[3], personal[4]))
	require.Equal(t, http.StatusCreated, res.Status)
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	tokenID, viewer := mint(t, api, access.RoleViewer)

	list := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications?job="+slug, "")
	require.Equal(t, http.StatusOK, list.Status)
	require.Contains(t, string(list.Body), personal[1])
	one := as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID, "")
	require.Equal(t, http.StatusOK, one.Status, "body: %s", one.Body)
	var rec struct {
		FullName          string   `json:"full_name"`
		Email             string   `json:"email"`
		Phone             string   `json:"phone"`
		CoverLetter       string   `json:"cover_letter"`
		Links             []string `json:"links"`
		ConfirmationEmail struct {
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
		} `json:"confirmation_email"`
		Analytics struct {
			Recorded bool `json:"recorded"`
		} `json:"analytics"`
	}
	require.NoError(t, json.Unmarshal(one.Body, &rec))
	require.Equal(t, personal, []string{rec.FullName, rec.Email, rec.Phone, rec.CoverLetter, rec.Links[0]})
	require.Equal(t, "queued", rec.ConfirmationEmail.State)
	require.False(t, rec.Analytics.Recorded)
	// A denied read and a read of an unknown id, for the log too.
	require.Equal(t, http.StatusUnauthorized, as(t, api, viewer+"x", http.MethodGet, "/api/v1/admin/applications/"+r.ID, "").Status)
	require.Equal(t, http.StatusNotFound, as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+uuid.NewString(), "").Status)

	var audit string
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT string_agg(row_to_json(audit_log)::text, E'\n' ORDER BY id) FROM audit_log`).Scan(&audit))
	require.Contains(t, audit, `"action":"applications.read"`)
	require.Contains(t, audit, `"target_id":"`+r.ID+`"`)
	require.Contains(t, audit, access.TokenActor(tokenID))
	logs := api.Logs.String()
	for _, where := range map[string]string{"audit log": audit, "API logs": logs} {
		for _, v := range append(personal, "Hedy", "lamarr", viewer, viewer[len(access.TokenPrefix):len(access.TokenPrefix)+12]) {
			require.NotContains(t, strings.ToLower(where), strings.ToLower(v))
		}
	}
}

func TestAdminJobs(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	_, admin := mint(t, api, access.RoleAdmin)

	res := as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"data-engineer","title":" Data engineer ","description":"Pipes."}`)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	require.Equal(t, "/api/v1/jobs/data-engineer", res.Header.Get("Location"))
	requireProblem(t, as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"data-engineer","title":"Again"}`), http.StatusConflict, "slug-taken")
	p := requireProblem(t, as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"Bad Slug","title":""}`), http.StatusUnprocessableEntity, "validation")
	require.Len(t, p.Errors, 2)

	res = as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/data-engineer", `{"status":"closed","title":"Data engineer (filled)"}`)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var job struct{ Title, Description, Status string }
	require.NoError(t, json.Unmarshal(res.Body, &job))
	require.Equal(t, "Data engineer (filled)", job.Title)
	require.Equal(t, "Pipes.", job.Description)
	require.Equal(t, "closed", job.Status)
	// Questions are fixed at creation: PATCH refuses them by name, not
	// ignoring them.
	p = requireProblem(t, as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/data-engineer", `{"questions":[]}`), http.StatusBadRequest, "invalid-json")
	require.Equal(t, "questions", p.Errors[0].Field)
	p = requireProblem(t, as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/data-engineer", `{"status":"archived"}`), http.StatusUnprocessableEntity, "validation")
	require.Equal(t, "status", p.Errors[0].Field)
	requireProblem(t, as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/data-engineer", `{}`), http.StatusUnprocessableEntity, "validation")
	requireProblem(t, as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/no-such-job", `{"status":"open"}`), http.StatusNotFound, "not-found")

	var actions []string
	rows, err := api.Pool.Query(t.Context(), `SELECT action || ' ' || target_id || ' ' || outcome FROM audit_log WHERE action LIKE 'jobs.%' ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var a string
		require.NoError(t, rows.Scan(&a))
		actions = append(actions, a)
	}
	require.Equal(t, []string{"jobs.create data-engineer ok", "jobs.create data-engineer error", "jobs.update data-engineer ok", "jobs.update no-such-job error"}, actions)
}

// A posting's location and team: optional, set on create, changed or
// cleared by PATCH, shown by the public API; too long is refused by name and
// changes nothing.
func TestAdminJobsLocationAndTeam(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	_, admin := mint(t, api, access.RoleAdmin)
	type job struct{ Slug, Title, Location, Team string }
	get := func(path string) job {
		t.Helper()
		res := api.Do(t, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
		var j job
		require.NoError(t, json.Unmarshal(res.Body, &j))
		return j
	}

	res := as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"sre","title":"SRE","location":" Berlin or remote ","team":"Platform"}`)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	require.Equal(t, job{"sre", "SRE", "Berlin or remote", "Platform"}, get("/api/v1/jobs/sre"))
	res = as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"intern","title":"Intern"}`)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	require.Contains(t, string(api.Do(t, http.MethodGet, "/api/v1/jobs/intern", "").Body), `"location":"","team":""`, "not given: empty")

	res = api.Do(t, http.MethodGet, "/api/v1/jobs", "")
	var list struct{ Jobs []job }
	require.NoError(t, json.Unmarshal(res.Body, &list))
	require.Contains(t, list.Jobs, job{"sre", "SRE", "Berlin or remote", "Platform"})

	long := strings.Repeat("x", 201)
	p := requireProblem(t, as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"qa","title":"QA","location":"`+long+`","team":"`+long+`"}`),
		http.StatusUnprocessableEntity, "validation")
	require.ElementsMatch(t, []string{"location", "team"}, []string{p.Errors[0].Field, p.Errors[1].Field})
	requireProblem(t, api.Do(t, http.MethodGet, "/api/v1/jobs/qa", ""), http.StatusNotFound, "not-found")

	res = as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/sre", `{"location":"Lisbon","team":""}`)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	require.Equal(t, job{"sre", "SRE", "Lisbon", ""}, get("/api/v1/jobs/sre"), "a change, and an empty team clears it")
	p = requireProblem(t, as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/sre", `{"title":"Site reliability","team":"`+long+`"}`),
		http.StatusUnprocessableEntity, "validation")
	require.Equal(t, "team", p.Errors[0].Field)
	require.Equal(t, job{"sre", "SRE", "Lisbon", ""}, get("/api/v1/jobs/sre"), "a refused patch changes nothing")
}

// A NUL byte (which Postgres refuses) in any of a posting's text fields is
// a 422 naming the field, on create and on PATCH, and changes nothing.
func TestAdminJobsNULRefusedByName(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	_, admin := mint(t, api, access.RoleAdmin)
	res := as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"sre","title":"SRE"}`)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	for i, field := range []string{"title", "description", "location", "team"} {
		body := fmt.Sprintf(`{"slug":"p-%d","title":"T","%s":"a\u0000b"}`, i, field)
		if field == "title" {
			body = fmt.Sprintf(`{"slug":"p-%d","title":"a\u0000b"}`, i)
		}
		p := requireProblem(t, as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", body), http.StatusUnprocessableEntity, "validation")
		require.Len(t, p.Errors, 1, field)
		require.Equal(t, field, p.Errors[0].Field)
		requireProblem(t, api.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/jobs/p-%d", i), ""), http.StatusNotFound, "not-found")

		p = requireProblem(t, as(t, api, admin, http.MethodPatch, "/api/v1/admin/jobs/sre", `{"`+field+`":"a\u0000b"}`), http.StatusUnprocessableEntity, "validation")
		require.Equal(t, field, p.Errors[0].Field)
	}
	res = api.Do(t, http.MethodGet, "/api/v1/jobs/sre", "")
	require.Contains(t, string(res.Body), `"title":"SRE"`, "a refused patch changes nothing")
}

// The admin view of an application shows the ledger's and the sink's state.
func TestAdminApplicationShowsDeliveryAndAnalytics(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	res := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, res.Status)
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))
	_, err := api.Pool.Exec(t.Context(), `INSERT INTO deliveries (application_id, state, attempts, last_attempt_at, sent_at)
		VALUES ($1, 'sent', 2, now(), now())`, r.ID)
	require.NoError(t, err)
	_, err = api.Pool.Exec(t.Context(), `INSERT INTO analytics_events (event_id, kind, application_id, posting_slug, occurred_at)
		SELECT id, kind, aggregate_id, $2, created_at FROM outbox_events WHERE aggregate_id = $1`, r.ID, slug)
	require.NoError(t, err)
	_, viewer := mint(t, api, access.RoleViewer)

	res = as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID, "")
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var rec struct {
		ConfirmationEmail struct {
			State    string     `json:"state"`
			Attempts int        `json:"attempts"`
			SentAt   *time.Time `json:"sent_at"`
		} `json:"confirmation_email"`
		Analytics struct {
			Recorded   bool       `json:"recorded"`
			RecordedAt *time.Time `json:"recorded_at"`
		} `json:"analytics"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &rec))
	require.Equal(t, "sent", rec.ConfirmationEmail.State)
	require.Equal(t, 2, rec.ConfirmationEmail.Attempts)
	require.NotNil(t, rec.ConfirmationEmail.SentAt)
	require.True(t, rec.Analytics.Recorded)
	require.NotNil(t, rec.Analytics.RecordedAt)
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/testkit"
)

// The first admin token comes from intakectl; it works against the API at
// once, and revoking it stops it there at once. Every change intakectl
// makes is in the audit log under cli:<user>.
func TestTokensAndAudit(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	c := newCtl(t, api.DBURL)

	out, details, err := c.run("tokens", "create", "--name", "first admin", "--role", "admin", "--expires", "30d")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	secret := lines[len(lines)-1]
	require.True(t, access.CheckTokenFormat(secret), "the last line of stdout is the token alone: %q", out)
	require.Contains(t, details, `name "first admin", role admin, expires `)
	require.NotContains(t, details, secret)

	res := api.Do(t, http.MethodGet, "/api/v1/admin/tokens", "", "Authorization", "Bearer "+secret)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var listed []access.Token
	require.NoError(t, json.Unmarshal([]byte(c.ok("tokens", "list", "--json")), &listed))
	require.Len(t, listed, 1)
	require.Equal(t, "first admin", listed[0].Name)
	require.NotNil(t, listed[0].ExpiresAt)
	require.WithinDuration(t, time.Now().Add(30*24*time.Hour), *listed[0].ExpiresAt, time.Minute)
	require.NotNil(t, listed[0].LastUsedAt)
	require.NotContains(t, c.ok("tokens", "list"), secret)

	require.Contains(t, c.ok("tokens", "revoke", listed[0].ID), "revoked at")
	res = api.Do(t, http.MethodGet, "/api/v1/admin/tokens", "", "Authorization", "Bearer "+secret)
	require.Equal(t, http.StatusUnauthorized, res.Status)

	c.ok("postings", "add", "--slug", "go-engineer", "--title", "Go engineer")
	c.ok("postings", "close", "go-engineer")
	c.ok("postings", "open", "go-engineer")

	// Bad input names the flag.
	_, _, err = c.run("tokens", "create", "--name", "x", "--role", "root")
	require.ErrorContains(t, err, "--role")
	_, _, err = c.run("tokens", "create", "--name", "x", "--role", "viewer", "--expires", "-1h")
	require.ErrorContains(t, err, "--expires")
	_, _, err = c.run("tokens", "revoke", "not-an-id")
	require.ErrorContains(t, err, `no token with id "not-an-id"`)

	u, err := user.Current()
	require.NoError(t, err)
	actor := access.CLIActor(u.Username)
	type entry struct {
		At      time.Time `json:"at"`
		Actor   string    `json:"actor"`
		Action  string    `json:"action"`
		Target  string    `json:"target"`
		Outcome string    `json:"outcome"`
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(c.ok("audit", "--json", "--since", "1h", "--actor", actor)))
	for sc.Scan() {
		var e entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), "one JSON object a line: %s", sc.Text())
		require.Equal(t, actor, e.Actor)
		require.WithinDuration(t, time.Now(), e.At, time.Minute)
		got = append(got, e.Action+" "+e.Target+" "+e.Outcome)
	}
	// Newest first.
	require.Equal(t, []string{
		"jobs.update go-engineer ok",
		"jobs.update go-engineer ok",
		"jobs.create go-engineer ok",
		"tokens.revoke " + listed[0].ID + " ok",
		"tokens.list  ok",
		"tokens.list  ok",
		"tokens.create " + listed[0].ID + " ok",
	}, got)
	var rows int
	require.NoError(t, api.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE actor = $1 AND action = 'audit.list'`, actor).Scan(&rows))
	require.Equal(t, 1, rows, "reading the audit log is audited too")
}

// Operators read applications at the database; each read is audited.
func TestApplicationsListAndShow(t *testing.T) {
	t.Parallel()
	c, pool, _ := statusSetup(t)
	testkit.Seed(t, pool, "go-engineer", 3)

	var listed []struct {
		ID    string `json:"id"`
		Job   string `json:"job"`
		Email string `json:"email"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.ok("applications", "list", "--job", "go-engineer", "--limit", "2", "--json")), &listed))
	require.Len(t, listed, 2)
	require.Equal(t, "go-engineer", listed[0].Job)
	_, err := pool.Exec(context.Background(), `UPDATE applications SET answers = '{"work_permit":true,"start":"In May"}' WHERE id = $1`, listed[0].ID)
	require.NoError(t, err)
	shown := c.ok("applications", "show", listed[0].ID)
	require.Contains(t, shown, listed[0].Email)
	require.Contains(t, shown, "queued (0 attempts")
	require.Contains(t, shown, "\nanswers\nstart: In May\nwork_permit: yes\n", "the answers, by key")
	_, _, err = c.run("applications", "show", "00000000-0000-0000-0000-000000000000")
	require.ErrorContains(t, err, "no application with id")

	var audited []string
	rows, err := pool.Query(context.Background(), `SELECT action || ' ' || target_id || ' ' || outcome FROM audit_log ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var a string
		require.NoError(t, rows.Scan(&a))
		audited = append(audited, a)
	}
	require.Equal(t, []string{
		"applications.list go-engineer ok",
		"applications.read " + listed[0].ID + " ok",
		"applications.read 00000000-0000-0000-0000-000000000000 error",
	}, audited)
}

// auditedCount counts the ok audit rows of action by this operating-system
// user (intakectl's actor).
func auditedCount(t *testing.T, pool *pgxpool.Pool, action string) int {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE actor = $1 AND action = $2 AND outcome = 'ok'`, access.CLIActor(u.Username), action).Scan(&n))
	return n
}

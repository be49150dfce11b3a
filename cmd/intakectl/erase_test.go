package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// intakectl erases one application by id and a person by address, with a
// reason in the audit log under cli:<user>; bad input names the flag.
func TestApplicationsErase(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	c := newCtl(t, api.DBURL)
	c.ok("postings", "add", "--slug", "go-engineer", "--title", "Go engineer")
	c.ok("postings", "add", "--slug", "sre", "--title", "SRE")
	body := `{"full_name":"Ada Lovelace","email":"ada@example.com"}`
	var ids []string
	for i, slug := range []string{"go-engineer", "sre", "go-engineer"} {
		b := body
		if i == 2 {
			b = `{"full_name":"Grace Hopper","email":"grace@example.com"}`
		}
		res := api.Submit(t, slug, "k"+slug+b[15:20], b)
		require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
		var r struct{ ID string }
		require.NoError(t, json.Unmarshal(res.Body, &r))
		ids = append(ids, r.ID)
	}

	_, _, err := c.run("applications", "erase", ids[2])
	require.ErrorContains(t, err, "--reason")
	_, _, err = c.run("applications", "erase", ids[2], "--reason", "asked by grace@example.com")
	require.ErrorContains(t, err, "--reason must not hold an email address")
	_, _, err = c.run("applications", "erase", "--email", "nobody", "--reason", "T-1")
	require.ErrorContains(t, err, "--email")

	require.Equal(t, "application "+ids[2]+" erased\n", c.ok("applications", "erase", ids[2], "--reason", "T-1"))
	require.Equal(t, "application "+ids[2]+" erased\n", c.ok("applications", "erase", ids[2], "--reason", "T-1"), "again: same answer")
	require.Equal(t, "erased 2 applications\n", c.ok("applications", "erase", "--email", "ADA@example.com", "--reason", "T-2"))
	list := c.ok("applications", "list")
	require.NotContains(t, list, "Ada Lovelace")
	require.NotContains(t, list, "Grace Hopper")
	require.Equal(t, 3, api.Count(t, "applications"))

	audit := c.ok("audit", "--json")
	require.NotContains(t, audit, "example.com")
	var erased, requests int
	for _, line := range strings.Split(strings.TrimSpace(audit), "\n") {
		var e map[string]string
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		require.True(t, strings.HasPrefix(e["actor"], "cli:"), line)
		switch e["action"] {
		case "applications.erase":
			erased++
			require.Contains(t, []string{"T-1", "T-2"}, e["detail"], line)
		case "erasures.create":
			requests++
			require.Equal(t, "erased 2; T-2", e["detail"])
		}
	}
	require.Equal(t, 4, erased)
	require.Equal(t, 1, requests)
}

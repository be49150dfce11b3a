package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// intakectl report for a past week: built from the data while none is
// stored, the stored one once the leader made it (and not the data's
// later state), in text and as JSON; a malformed week is a usage error, a
// future one an error; the default is the current week, a preview.
func TestReport(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := t.Context()
	_, err := store.CreatePosting(ctx, application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "go-engineer", 3)
	week, err := application.ParseWeek("2026-W40")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE postings SET created_at = $1`, week.Start())
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE applications SET received_at = $1`, week.Start().Add(time.Hour))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO deliveries (application_id, state, sent_at) SELECT id, 'sent', received_at + interval '3 seconds' FROM applications`)
	require.NoError(t, err)
	c := newCtl(t, dbURL)

	out := c.ok("report", "--week", "2026-W40")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Equal(t, "WEEK 2026-W40 (2026-09-28 to 2026-10-04 UTC)", lines[0][:len("WEEK 2026-W40 (2026-09-28 to 2026-10-04 UTC)")])
	require.Contains(t, lines[0], "built now from the data, not stored")
	require.Equal(t, []string{"POSTING", "RECEIVED", "SENT", "RETRYING", "FAILED", "PENDING", "ANALYTICS", "P50", "P95", "ERASURES"}, strings.Fields(lines[2]))
	require.Equal(t, []string{"go-engineer", "3", "3", "0", "0", "0", "0", "3.00s", "3.00s", "0"}, strings.Fields(lines[3]))
	require.Equal(t, []string{"TOTAL", "3", "3", "0", "0", "0", "0", "3.00s", "3.00s", "0"}, strings.Fields(lines[4]))
	require.Zero(t, storedReports(t, pool), "intakectl never stores a report")

	built, err := store.BuildReport(ctx, week, week.End())
	require.NoError(t, err)
	_, err = store.SaveReport(ctx, built)
	require.NoError(t, err)
	// A fourth application of the week, after the report was stored.
	_, err = store.CreatePosting(ctx, application.NewPosting{Slug: "designer", Title: "Designer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "designer", 1)
	_, err = pool.Exec(ctx, `UPDATE applications SET received_at = $1 WHERE received_at > $2`, week.Start().Add(2*time.Hour), week.End())
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE postings SET created_at = $1`, week.Start())
	require.NoError(t, err)

	var got struct {
		Week     string `json:"week"`
		Stored   bool   `json:"stored"`
		Final    bool   `json:"final"`
		Postings []struct {
			Slug              string   `json:"slug"`
			Received          int      `json:"received"`
			ConfirmationsSent int      `json:"confirmations_sent"`
			P50               *float64 `json:"email_accepted_p50_seconds"`
		} `json:"postings"`
		Totals struct {
			Received int `json:"received"`
		} `json:"totals"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.ok("report", "--week", "2026-W40", "--json")), &got))
	require.Equal(t, "2026-W40", got.Week)
	require.True(t, got.Stored)
	require.True(t, got.Final)
	require.Len(t, got.Postings, 1)
	require.Equal(t, "go-engineer", got.Postings[0].Slug)
	require.Equal(t, 3, got.Postings[0].Received)
	require.Equal(t, 3, got.Postings[0].ConfirmationsSent)
	require.InDelta(t, 3.0, *got.Postings[0].P50, 1e-9)
	require.Equal(t, 3, got.Totals.Received)
	require.Contains(t, c.ok("report", "--week", "2026-W40"), "stored, not emailed")
	require.NoError(t, json.Unmarshal([]byte(c.ok("report", "--week", "2026-W40", "--json", "--fresh")), &got))
	require.False(t, got.Stored)
	require.Equal(t, 4, got.Totals.Received, "--fresh reads the data as it is now")

	_, _, err = c.run("report", "--week", "2026-40")
	var usage usageError
	require.True(t, errors.As(err, &usage), "a malformed week is a usage error: %v", err)
	_, _, err = c.run("report", "--week", application.WeekOf(time.Now().AddDate(0, 0, 14)).String())
	require.ErrorContains(t, err, "has not started")

	current := c.ok("report")
	require.Contains(t, current, "WEEK "+application.WeekOf(time.Now()).String())
	require.Contains(t, current, "preview: the week is not over")
}

func storedReports(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM reports`).Scan(&n))
	return n
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/outbox"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// An operator finds a quarantined event through status, lists it, fixes
// its cause and retries it; the relay then dispatches it.
func TestOutboxQuarantineListAndRetry(t *testing.T) {
	t.Parallel()
	c, pool, store := statusSetup(t)
	mustExec(t, pool, `INSERT INTO worker_heartbeats VALUES ('w1', 'host', 42, now(), now())`)
	testkit.Seed(t, pool, "go-engineer", 3)
	var poisoned, appID string
	require.NoError(t, pool.QueryRow(context.Background(), `
		UPDATE outbox_events SET payload = '{"posting_slug": 5}'
		WHERE id = (SELECT id FROM outbox_events ORDER BY created_at, id LIMIT 1)
		RETURNING id::text, aggregate_id::text`).Scan(&poisoned, &appID))
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	relay := &outbox.Relay{Store: store, River: inserter, Logger: slog.New(slog.DiscardHandler), Batch: 100, PollInterval: time.Minute, MaxAttempts: 5}
	n, err := relay.DispatchOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// status: exit 1, naming the quarantine; the event is not in the backlog.
	s, err := statusOf(t, c)
	var stuck stuckError
	require.ErrorAs(t, err, &stuck)
	require.False(t, s.OK)
	require.Len(t, s.Stuck, 1, "%v", s.Stuck)
	require.Contains(t, s.Stuck[0], "outbox: 1 events quarantined")
	require.Contains(t, s.Stuck[0], "intakectl outbox list")
	require.Zero(t, s.Outbox.Undispatched)
	require.EqualValues(t, 1, s.Outbox.Quarantined)
	text, _, err := c.run("status")
	require.ErrorAs(t, err, &stuck)
	require.Contains(t, text, "OUTBOX   0 undispatched; 1 quarantined, the first 0s ago\n")

	// list: the event with its error.
	var listed []postgres.QuarantinedEvent
	require.NoError(t, json.Unmarshal([]byte(c.ok("outbox", "list", "--json")), &listed))
	require.Len(t, listed, 1)
	require.Equal(t, poisoned, listed[0].ID)
	require.Equal(t, appID, listed[0].AggregateID)
	require.Equal(t, application.EventSubmitted, listed[0].Kind)
	require.Equal(t, "payload: json: cannot unmarshal number into posting_slug", listed[0].Error)
	require.NotNil(t, listed[0].QuarantinedAt)
	lines := strings.Split(strings.TrimRight(c.ok("outbox", "list"), "\n"), "\n")
	require.Equal(t, []string{"EVENT", "KIND", "APPLICATION", "CREATED", "QUARANTINED", "ERROR"}, strings.Fields(lines[0]))
	require.Len(t, lines, 2)
	require.True(t, strings.HasPrefix(lines[1], poisoned), lines[1])
	require.True(t, strings.HasSuffix(lines[1], "payload: json: cannot unmarshal number into posting_slug"), lines[1])

	// --all adds the events waiting for the relay.
	_, err = store.CreatePosting(context.Background(), application.NewPosting{Slug: "other", Title: "Other"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "other", 2)
	require.NoError(t, json.Unmarshal([]byte(c.ok("outbox", "list", "--json", "--all")), &listed))
	require.Len(t, listed, 3)
	require.Nil(t, listed[1].QuarantinedAt)
	require.Empty(t, listed[1].Error)
	require.NoError(t, json.Unmarshal([]byte(c.ok("outbox", "list", "--json", "--all", "--limit", "1")), &listed))
	require.Len(t, listed, 2)
	require.Contains(t, c.ok("outbox", "list", "--all"), "(waiting for the relay)")
	n, err = relay.DispatchOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// retry: mistakes are refused and release nothing.
	unknown := uuid.NewString()
	_, _, err = c.run("outbox", "retry", poisoned, unknown)
	require.EqualError(t, err, "no outbox event with id "+unknown)
	_, _, err = c.run("outbox", "retry", "not-a-uuid")
	require.EqualError(t, err, `"not-a-uuid" is not an event id`)
	var usage usageError
	_, _, err = c.run("outbox", "retry")
	require.True(t, errors.As(err, &usage), "a bare retry must name its targets")
	_, _, err = c.run("outbox", "retry", "--all", poisoned)
	require.True(t, errors.As(err, &usage))
	s, _ = statusOf(t, c)
	require.EqualValues(t, 1, s.Outbox.Quarantined, "a refused retry released something")

	// Fixed and retried, the event is dispatched at the next round.
	mustExec(t, pool, `UPDATE outbox_events SET payload = jsonb_build_object('application_id', aggregate_id, 'posting_slug', 'go-engineer') WHERE id = $1`, poisoned)
	require.Equal(t, "released 1 quarantined events; the relay tries them again at its next round\n", c.ok("outbox", "retry", poisoned))
	require.Equal(t, "released 0 quarantined events; the relay tries them again at its next round\n"+
		"1 of the given events were not quarantined (released already, or dispatched)\n", c.ok("outbox", "retry", poisoned), "retry is idempotent")
	require.Equal(t, 1, auditedCount(t, pool, "outbox.retry"), "the release is audited, the no-op is not")
	s, err = statusOf(t, c)
	require.NoError(t, err, "%v", s.Stuck)
	require.Zero(t, s.Outbox.Quarantined)
	require.EqualValues(t, 1, s.Outbox.Undispatched)
	n, err = relay.DispatchOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var jobs int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND args->>'application_id' = $1`, appID).Scan(&jobs))
	require.Equal(t, 1, jobs)
	require.Equal(t, "released 0 quarantined events; the relay tries them again at its next round\n", c.ok("outbox", "retry", "--all"))
	require.Equal(t, "[]\n", c.ok("outbox", "list", "--json"))
}

func TestOutboxUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCtl(t, testkit.NewDB(t))
	for _, args := range [][]string{
		{"outbox"},
		{"outbox", "purge"},
		{"outbox", "list", "extra"},
		{"outbox", "list", "--limit", "0"},
		{"outbox", "list", "--since", "1h"},
	} {
		out, _, err := c.run(args...)
		var usage usageError
		require.ErrorAs(t, err, &usage, "%v", args)
		require.Contains(t, err.Error(), "usage: intakectl")
		require.Empty(t, out)
	}
}

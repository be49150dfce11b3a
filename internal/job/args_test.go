package job_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
)

func event(kind string) application.Event {
	return application.Event{
		ID:            "0196a1f0-0000-7000-8000-000000000001",
		Kind:          kind,
		ApplicationID: "0196a1f0-0000-7000-8000-000000000002",
		PostingSlug:   "engineer",
		OccurredAt:    time.Date(2026, 11, 26, 3, 0, 0, 123456000, time.UTC),
	}
}

// jsonKeys returns the keys args encode to, sorted.
func jsonKeys(t *testing.T, args river.JobArgs) []string {
	t.Helper()
	b, err := json.Marshal(args)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return slices.Sorted(maps.Keys(m))
}

// With the http sink a submitted event is two jobs.
func TestForEventSubmitted(t *testing.T) {
	t.Parallel()
	ev := event(application.EventSubmitted)

	params := job.ForEvent(ev, 42)

	require.Len(t, params, 2)
	byKind := map[string]river.InsertManyParams{}
	for _, p := range params {
		byKind[p.Args.Kind()] = p
	}
	require.Len(t, byKind, 2, "two jobs of the same kind")

	email, ok := byKind["confirmation_email"]
	require.True(t, ok, "no confirmation email job")
	require.Equal(t, job.ConfirmationEmailArgs{ApplicationID: ev.ApplicationID}, email.Args)
	require.NotNil(t, email.InsertOpts)
	require.Equal(t, "email", email.InsertOpts.Queue)
	require.Equal(t, job.QueueEmail, email.InsertOpts.Queue)
	require.Equal(t, 42, email.InsertOpts.MaxAttempts)

	analytics, ok := byKind["analytics_event"]
	require.True(t, ok, "no analytics job")
	require.Equal(t, job.AnalyticsEventArgs{
		EventID:       ev.ID,
		EventKind:     ev.Kind,
		ApplicationID: ev.ApplicationID,
		PostingSlug:   ev.PostingSlug,
		OccurredAt:    ev.OccurredAt,
	}, analytics.Args)
	require.NotNil(t, analytics.InsertOpts)
	require.Equal(t, "analytics", analytics.InsertOpts.Queue)
	require.Equal(t, job.QueueAnalytics, analytics.InsertOpts.Queue)
	require.Equal(t, 42, analytics.InsertOpts.MaxAttempts)
}

func TestForEventOtherKind(t *testing.T) {
	t.Parallel()
	ev := event("application.erased")

	params := job.ForEvent(ev, 9)

	require.Len(t, params, 1, "only the analytics record: no confirmation email for another kind")
	require.Equal(t, "analytics_event", params[0].Args.Kind())
	args, ok := params[0].Args.(job.AnalyticsEventArgs)
	require.True(t, ok)
	require.Equal(t, ev.ID, args.EventID)
	require.Equal(t, "application.erased", args.EventKind)
	require.Equal(t, "analytics", params[0].InsertOpts.Queue)
	require.Equal(t, 9, params[0].InsertOpts.MaxAttempts)
}

// With the Postgres sink the relay writes the analytics record itself: a
// submitted event is its confirmation email alone, and an event of another
// kind is no job at all.
func TestForEventWithoutAnalytics(t *testing.T) {
	t.Parallel()
	ev := event(application.EventSubmitted)
	params := job.ForEventWithoutAnalytics(ev, 42)
	require.Len(t, params, 1)
	require.Equal(t, job.ConfirmationEmail(ev.ApplicationID, 42), params[0])

	require.Empty(t, job.ForEventWithoutAnalytics(event("application.erased"), 9))
}

// The args types' own InsertOpts (used by any insert that does not go
// through ForEvent, such as the reconciler's) name the same queues.
func TestArgsDefaultQueues(t *testing.T) {
	t.Parallel()
	require.Equal(t, job.QueueEmail, job.ConfirmationEmailArgs{}.InsertOpts().Queue)
	require.Equal(t, job.QueueAnalytics, job.AnalyticsEventArgs{}.InsertOpts().Queue)
	require.NotEqual(t, job.QueueEmail, job.QueueAnalytics, "analytics must not share email's queue")
}

// Job args carry ids only (SPEC section 6): these are every key they encode.
func TestArgsEncodeIDsOnly(t *testing.T) {
	t.Parallel()
	params := job.ForEvent(event(application.EventSubmitted), 1)
	got := map[string][]string{}
	for _, p := range params {
		got[p.Args.Kind()] = jsonKeys(t, p.Args)
	}
	require.Equal(t, map[string][]string{
		"confirmation_email": {"application_id"},
		"analytics_event":    {"application_id", "event_id", "event_kind", "occurred_at", "posting_slug"},
	}, got)
}

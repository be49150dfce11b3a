package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
)

// withMetrics gives the bundle's relay metrics of its own and returns the
// registry they are in.
func (b *bundle) withMetrics(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	b.relay.Metrics = job.NewMetrics(reg)
	return reg
}

// analyticsFigures are the relay's analytics metrics:
// intake_analytics_records_total{result="recorded"} and the number of lags
// intake_analytics_lag_seconds observed.
func analyticsFigures(t *testing.T, reg *prometheus.Registry) (recorded float64, lags uint64) {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "intake_analytics_records_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "recorded" {
						recorded = m.GetCounter().GetValue()
					}
				}
			case "intake_analytics_lag_seconds":
				lags = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return recorded, lags
}

// addOtherKindEvent stores an event of a kind other than
// application.submitted for the application of an existing event, the way
// a later kind would be stored. The schema allows only the submitted kind
// today, so this test's private database is opened to others first.
func (b *bundle) addOtherKindEvent(t *testing.T, kind string) string {
	t.Helper()
	var id string
	_, err := b.pool.Exec(t.Context(), `ALTER TABLE outbox_events DROP CONSTRAINT IF EXISTS outbox_events_kind_check`)
	require.NoError(t, err)
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		INSERT INTO outbox_events (id, kind, aggregate_id, payload)
		SELECT gen_random_uuid(), $1, aggregate_id, payload FROM outbox_events
		WHERE kind = 'application.submitted' ORDER BY created_at LIMIT 1
		RETURNING id::text`, kind).Scan(&id))
	return id
}

// One round writes every event's analytics record (an event of another kind
// too) and inserts no analytics job when the relay records analytics (the
// Postgres sink); with the http sink it inserts an analytics job per event
// and writes no record.
func TestRoundRecordsAnalyticsInsteadOfJobs(t *testing.T) {
	t.Parallel()
	const otherKind = "application.withdrawn"
	for _, tt := range []struct {
		name          string
		analyticsJobs bool
	}{{"postgres sink", false}, {"http sink", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, &setupOpts{AnalyticsJobs: tt.analyticsJobs})
			reg := b.withMetrics(t)
			subs := []application.Submission{b.submit(t), b.submit(t), b.submit(t)}
			other := b.addOtherKindEvent(t, otherKind)

			n, err := b.relay.DispatchOnce(t.Context())
			require.NoError(t, err)
			require.Equal(t, len(subs)+1, n)
			require.Equal(t, len(subs), b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email'`))

			if tt.analyticsJobs {
				require.Equal(t, len(subs)+1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'analytics_event'`))
				require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'analytics_event' AND args->>'event_id' = $1`, other))
				require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events`), "the relay wrote records for the http sink")
				recorded, lags := analyticsFigures(t, reg)
				require.Zero(t, recorded, "the jobs count their own records")
				require.Zero(t, lags)
				return
			}

			require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'analytics_event'`), "analytics jobs beside the relay's records")
			// Each event's record is the event: its id, kind, application,
			// posting and commit time, and nothing else.
			require.Zero(t, b.count(t, `
				SELECT count(*) FROM outbox_events e LEFT JOIN analytics_events ae ON ae.event_id = e.id
				WHERE ae.event_id IS NULL OR ae.kind <> e.kind OR ae.application_id <> e.aggregate_id
				   OR ae.posting_slug <> e.payload->>'posting_slug' OR ae.occurred_at <> e.created_at`),
				"an event without its record, or with a record that is not its own")
			require.Equal(t, len(subs)+1, b.count(t, `SELECT count(*) FROM analytics_events`))
			require.Equal(t, 1, b.count(t, `SELECT count(*) FROM analytics_events WHERE event_id = $1 AND kind = $2`, other, otherKind))
			recorded, lags := analyticsFigures(t, reg)
			require.Equal(t, float64(len(subs)+1), recorded)
			require.Equal(t, uint64(len(subs)+1), lags)
		})
	}
}

// An event that makes no job at all (another kind, with the Postgres sink)
// may be alone in its round: the round records it and inserts nothing,
// rather than asking River for an insert of nothing.
func TestRoundOfAnEventWithoutJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.submit(t)
	n, err := b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	other := b.addOtherKindEvent(t, "application.withdrawn")

	n, err = b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.True(t, b.dispatched(t, other))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM analytics_events WHERE event_id = $1`, other))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job`), "only the first event's email")
	require.Zero(t, b.count(t, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NOT NULL`))
}

// An event dispatched a second time (here: made undispatched again by
// hand, the nearest a test gets to a relay that dispatched it twice) or
// recorded already (by the analytics job an older worker's relay inserted
// for it, during a rolling upgrade) keeps exactly one record, and the
// relay counts only the records it wrote.
func TestEventDispatchedAgainKeepsOneRecord(t *testing.T) {
	t.Parallel()
	const events = 5
	b := setup(t, nil)
	reg := b.withMetrics(t)
	b.seed(t, events)
	ids := b.eventIDs(t)

	var ev application.Event
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		SELECT id::text, kind, aggregate_id::text, payload->>'posting_slug', created_at FROM outbox_events WHERE id = $1`,
		ids[0]).Scan(&ev.ID, &ev.Kind, &ev.ApplicationID, &ev.PostingSlug, &ev.OccurredAt))
	isNew, err := b.store.RecordAnalyticsEvent(t.Context(), ev) // the older worker's analytics job
	require.NoError(t, err)
	require.True(t, isNew)

	n, err := b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, events, n)
	b.requireAllDispatchedOnce(t, events)
	recorded, _ := analyticsFigures(t, reg)
	require.Equal(t, float64(events-1), recorded, "the record the job wrote counted again")

	var recordedAt time.Time
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT max(recorded_at) FROM analytics_events`).Scan(&recordedAt))
	_, err = b.pool.Exec(t.Context(), `UPDATE outbox_events SET dispatched_at = NULL`)
	require.NoError(t, err)
	_, err = b.pool.Exec(t.Context(), `TRUNCATE river_job`)
	require.NoError(t, err)
	n, err = b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, events, n)
	b.requireAllDispatchedOnce(t, events)
	require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events WHERE recorded_at > $1`, recordedAt), "a record rewritten")
	recorded, _ = analyticsFigures(t, reg)
	require.Equal(t, float64(events-1), recorded, "records counted that the second round did not write")
}

// A quarantined event gets no analytics record, whether it was set aside
// before the insert (its payload) or by its own savepoint (its jobs refused);
// once released and dispatched it gets exactly one.
func TestQuarantinedEventIsRecordedOnlyOnceDispatched(t *testing.T) {
	t.Parallel()
	const events = 6
	b := setup(t, nil)
	b.seed(t, events)
	ids := b.eventIDs(t)
	badPayload, refused := ids[1], ids[4]
	_, err := b.pool.Exec(t.Context(), `UPDATE outbox_events SET payload = payload || '{"posting_slug": 5}' WHERE id = $1`, badPayload)
	require.NoError(t, err)

	enqueue := func(ctx context.Context, tx pgx.Tx, evs []application.Event) error {
		var params []river.InsertManyParams
		for _, ev := range evs {
			if ev.ID == refused {
				return errors.New("injected: this event's jobs are refused")
			}
			params = append(params, job.ForEventWithoutAnalytics(ev, maxAttempts)...)
		}
		_, err := b.relay.River.InsertManyTx(ctx, tx, params)
		return err
	}
	d, err := b.store.DispatchEventsAndRecord(t.Context(), b.relay.Batch, enqueue)
	require.NoError(t, err)
	require.Equal(t, events-2, d.Events)
	require.Len(t, d.Quarantined, 2)
	require.Len(t, d.Recorded, events-2)
	require.Equal(t, events-2, b.count(t, `SELECT count(*) FROM analytics_events`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events WHERE event_id = ANY($1::uuid[])`, []string{badPayload, refused}),
		"a quarantined event has an analytics record")

	_, err = b.pool.Exec(t.Context(), `UPDATE outbox_events SET payload = payload || jsonb_build_object('posting_slug', $2::text) WHERE id = $1`,
		badPayload, slug)
	require.NoError(t, err)
	released, err := b.store.ReleaseQuarantined(t.Context(), access.Caller{Actor: access.CLIActor("test"), Role: access.RoleAdmin}, nil)
	require.NoError(t, err)
	require.Len(t, released, 2)
	n, err := b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	b.requireAllDispatchedOnce(t, events)
}

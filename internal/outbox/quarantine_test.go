package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// eventIDs returns the outbox's events, oldest first.
func (b *bundle) eventIDs(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT id::text FROM outbox_events ORDER BY created_at, id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// quarantine is an event's quarantine columns.
type quarantine struct {
	At    *time.Time
	Error *string
}

func (b *bundle) quarantineOf(t *testing.T, eventID string) quarantine {
	t.Helper()
	var q quarantine
	require.NoError(t, b.pool.QueryRow(t.Context(),
		`SELECT quarantined_at, quarantine_error FROM outbox_events WHERE id = $1`, eventID).Scan(&q.At, &q.Error))
	return q
}

// A poison event (one that cannot become jobs) is quarantined, and every
// other event in its round is dispatched in that same round: one bad row
// never holds up the outbox behind it.
func TestPoisonEventDoesNotBlockTheOutbox(t *testing.T) {
	t.Parallel()
	const (
		events = 8
		rounds = 10
	)

	tests := []struct {
		name string
		// poison makes the event (the oldest) impossible to dispatch.
		poison func(t *testing.T, b *bundle, eventID string)
		// enqueue, when set, replaces the relay's job insert.
		enqueue func(b *bundle, poisoned string) func(ctx context.Context, tx pgx.Tx, evs []application.Event) error
		// wantError is the quarantine error recorded.
		wantError string
		// analyticsJobs runs the relay for the http sink (an analytics job
		// per event) instead of recording analytics itself.
		analyticsJobs bool
	}{
		{
			name: "payload does not decode",
			poison: func(t *testing.T, b *bundle, id string) {
				_, err := b.pool.Exec(t.Context(), `UPDATE outbox_events SET payload = '{"posting_slug": 5}' WHERE id = $1`, id)
				require.NoError(t, err)
			},
			wantError: "payload: json: cannot unmarshal number into posting_slug",
		},
		{
			name: "payload lacks the posting",
			poison: func(t *testing.T, b *bundle, id string) {
				_, err := b.pool.Exec(t.Context(), `UPDATE outbox_events SET payload = payload - 'posting_slug' WHERE id = $1`, id)
				require.NoError(t, err)
			},
			wantError: "payload: posting_slug is missing",
		},
		{
			// River cannot encode the analytics job's occurred_at: JSON
			// times stop at year 9999, Postgres's go on. The batch insert
			// fails for this one event's sake.
			name: "its job args do not encode",
			poison: func(t *testing.T, b *bundle, id string) {
				_, err := b.pool.Exec(t.Context(), `UPDATE outbox_events SET created_at = '10000-01-01' WHERE id = $1`, id)
				require.NoError(t, err)
			},
			wantError:     "year outside of range",
			analyticsJobs: true,
		},
		{
			name: "the job insert rejects it",
			enqueue: func(b *bundle, poisoned string) func(ctx context.Context, tx pgx.Tx, evs []application.Event) error {
				fanOut := job.ForEvent
				if b.relay.RecordAnalytics {
					fanOut = job.ForEventWithoutAnalytics
				}
				return func(ctx context.Context, tx pgx.Tx, evs []application.Event) error {
					var params []river.InsertManyParams
					for _, ev := range evs {
						if ev.ID == poisoned {
							return errors.New("injected: this event's jobs are refused")
						}
						params = append(params, fanOut(ev, maxAttempts)...)
					}
					_, err := b.relay.River.InsertManyTx(ctx, tx, params)
					return err
				}
			},
			wantError: "jobs: injected: this event's jobs are refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, &setupOpts{AnalyticsJobs: tt.analyticsJobs})
			b.seed(t, events)
			ids := b.eventIDs(t)
			poisoned := ids[0] // the oldest: the first row every claim takes
			if tt.poison != nil {
				tt.poison(t, b, poisoned)
			}
			dispatch := b.relay.DispatchOnce
			if tt.enqueue != nil {
				enqueue := tt.enqueue(b, poisoned)
				dispatchEvents := b.store.DispatchEventsAndRecord
				if tt.analyticsJobs {
					dispatchEvents = b.store.DispatchEvents
				}
				dispatch = func(ctx context.Context) (int, error) {
					d, err := dispatchEvents(ctx, b.relay.Batch, enqueue)
					return d.Events, err
				}
			}

			var perRound []int
			var errs []error
			for range rounds {
				n, err := dispatch(t.Context())
				perRound = append(perRound, n)
				if err != nil {
					errs = append(errs, err)
				}
			}

			good := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == poisoned })
			var stuck []string
			for _, id := range good {
				if !b.dispatched(t, id) {
					stuck = append(stuck, id)
				}
			}
			require.Empty(t, stuck, "%d of %d good events never dispatched in %d rounds; round errors: %v",
				len(stuck), len(good), rounds, errs)
			require.Empty(t, errs, "rounds failed")
			require.Equal(t, []int{events - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, perRound,
				"the good events go in the first round, and the poisoned one is not tried again")

			q := b.quarantineOf(t, poisoned)
			require.NotNil(t, q.At, "the poisoned event is not quarantined")
			require.WithinDuration(t, time.Now(), *q.At, time.Minute)
			require.NotNil(t, q.Error)
			require.Contains(t, *q.Error, tt.wantError)
			require.NotContains(t, *q.Error, "@example.com", "personal data in the quarantine error")
			require.False(t, b.dispatched(t, poisoned))
			require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE args->>'event_id' = $1`, poisoned), "jobs for the poisoned event")
			jobsPerEvent, recordsPerEvent := 1, 1
			if tt.analyticsJobs {
				jobsPerEvent, recordsPerEvent = 2, 0
			}
			require.Equal(t, jobsPerEvent*(events-1), b.count(t, `SELECT count(*) FROM river_job`))
			require.Equal(t, events-1, b.count(t, `SELECT count(*) FROM deliveries`))
			require.Equal(t, recordsPerEvent*(events-1), b.count(t, `SELECT count(*) FROM analytics_events`))
			require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events WHERE event_id = $1`, poisoned), "an analytics record for the poisoned event")
			require.Zero(t, b.count(t, `SELECT count(*) FROM deliveries d JOIN outbox_events e ON e.aggregate_id = d.application_id
				WHERE e.id = $1`, poisoned), "a ledger row for the poisoned event's application")
			// Quarantined once, not again at every round.
			require.Equal(t, q, b.quarantineOf(t, poisoned))
		})
	}
}

// The happy path is one job insert for the whole batch, and so is a round
// with a payload that does not decode (found before the insert). Only a
// failed batch insert makes the round insert event by event, and then only
// the event whose insert fails is set aside, even when it is the round's
// only event.
func TestDispatchInsertsEventByEventOnlyAfterABatchFails(t *testing.T) {
	t.Parallel()
	const events = 5
	b := setup(t, nil)

	var calls []int // events per enqueue call
	var refuse string
	enqueue := func(ctx context.Context, tx pgx.Tx, evs []application.Event) error {
		calls = append(calls, len(evs))
		var params []river.InsertManyParams
		for _, ev := range evs {
			if ev.ID == refuse {
				return errors.New("injected: refused")
			}
			params = append(params, job.ForEventWithoutAnalytics(ev, maxAttempts)...)
		}
		_, err := b.relay.River.InsertManyTx(ctx, tx, params)
		return err
	}
	round := func() postgres.Dispatched {
		t.Helper()
		calls = nil
		d, err := b.store.DispatchEventsAndRecord(t.Context(), b.relay.Batch, enqueue)
		require.NoError(t, err)
		return d
	}

	b.submitN(t, events)
	require.Equal(t, events, round().Events)
	require.Equal(t, []int{events}, calls, "a clean round is one insert")

	b.submitN(t, events)
	ids := b.undispatched(t)
	_, err := b.pool.Exec(t.Context(), `UPDATE outbox_events SET payload = '{"posting_slug": 5}' WHERE id = $1`, ids[2])
	require.NoError(t, err)
	d := round()
	require.Equal(t, events-1, d.Events)
	require.Len(t, d.Quarantined, 1)
	require.Equal(t, ids[2], d.Quarantined[0].ID)
	require.Equal(t, []int{events - 1}, calls, "a payload that does not decode costs no second insert")

	b.submitN(t, events)
	ids = b.undispatched(t)
	refuse = ids[3]
	d = round()
	require.Equal(t, events-1, d.Events)
	require.Len(t, d.Quarantined, 1)
	require.Equal(t, refuse, d.Quarantined[0].ID)
	require.Equal(t, "jobs: injected: refused", d.Quarantined[0].Error)
	require.Equal(t, []int{events, 1, 1, 1, 1, 1}, calls, "the batch insert, then one insert per event")

	// An event alone in its round whose insert fails may be the system's
	// fault (at low traffic every round holds one event): the round fails
	// and nothing is set aside. Once another event gets through beside it,
	// it is quarantined.
	b.submitN(t, 1)
	refuse = b.undispatched(t)[0]
	_, err = b.store.DispatchEventsAndRecord(t.Context(), b.relay.Batch, enqueue)
	require.Error(t, err)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NOT NULL`), "a lone failure quarantines nothing")
	b.submitN(t, 1)
	d = round()
	require.Equal(t, 1, d.Events)
	require.Len(t, d.Quarantined, 1)
	require.Equal(t, refuse, d.Quarantined[0].ID)

	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NOT NULL`))
	require.Equal(t, events+2*(events-1)+1, b.count(t, `SELECT count(*) FROM deliveries`))
	require.Equal(t, events+2*(events-1)+1, b.count(t, `SELECT count(*) FROM analytics_events`), "one record for each event dispatched")
	require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events ae JOIN outbox_events e ON e.id = ae.event_id
		WHERE e.quarantined_at IS NOT NULL`), "an analytics record for a quarantined event")
	require.Zero(t, b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL AND quarantined_at IS NULL`))
}

// A running relay logs each quarantined event once, by id and error, with
// no personal data, and goes on dispatching.
func TestRelayLogsQuarantinedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.seed(t, 3)
	poisoned := b.undispatched(t)[0]
	_, err := b.pool.Exec(t.Context(), `UPDATE outbox_events SET payload = '{"posting_slug": 5}' WHERE id = $1`, poisoned)
	require.NoError(t, err)

	logs := &testkit.Buffer{}
	relay := cloneRelay(b.relay)
	relay.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	relay.PollInterval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		relay.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
	})

	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NOT NULL`) == 2
	}, 5*time.Second, 10*time.Millisecond)
	// Several polls go by: the quarantined event is not tried again.
	time.Sleep(5 * relay.PollInterval)
	cancel()
	<-ran

	var lines []map[string]any
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		if m["msg"] == "outbox event quarantined" {
			lines = append(lines, m)
		}
	}
	require.Len(t, lines, 1, "logs: %s", logs.String())
	require.Equal(t, "ERROR", lines[0]["level"])
	require.Equal(t, poisoned, lines[0]["event_id"])
	require.Equal(t, "payload: json: cannot unmarshal number into posting_slug", lines[0]["error"])
	require.Contains(t, lines[0]["action"], "intakectl outbox retry "+poisoned)
	require.NotContains(t, logs.String(), "outbox dispatch failed")
	require.NotContains(t, logs.String(), "@example.com", "personal data in the relay's log")
}

// submitN stores n applications through Store.Submit.
func (b *bundle) submitN(t *testing.T, n int) {
	t.Helper()
	for range n {
		b.submit(t)
	}
}

// undispatched returns the events waiting for the relay, oldest first.
func (b *bundle) undispatched(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT id::text FROM outbox_events
		WHERE dispatched_at IS NULL AND quarantined_at IS NULL ORDER BY created_at, id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

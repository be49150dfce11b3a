package outbox_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/outbox"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

const (
	slug        = "engineer"
	maxAttempts = 7
)

// bundle is what a relay test works with: a fresh database with one open
// posting, a store over it, and a relay whose River client only inserts. The
// relay records analytics in its rounds, as intake-worker's does with the
// default (Postgres) sink; setupOpts.AnalyticsJobs makes it the http sink's.
type bundle struct {
	pool  *pgxpool.Pool
	dbURL string
	store *postgres.Store
	relay *outbox.Relay
}

// setupOpts adjusts setup.
type setupOpts struct {
	// MaxConns sizes the pool; pgx's default when zero.
	MaxConns int32
	// AnalyticsJobs makes the relay insert an analytics job per event (the
	// http sink) instead of writing the records itself.
	AnalyticsJobs bool
}

func setup(t *testing.T, opts *setupOpts) *bundle {
	t.Helper()
	if opts == nil {
		opts = &setupOpts{}
	}
	dbURL := testkit.NewDB(t)
	pool, err := postgres.NewPool(t.Context(), dbURL, &postgres.PoolOpts{MaxConns: opts.MaxConns})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := postgres.NewStore(pool)
	_, err = store.CreatePosting(t.Context(), application.NewPosting{Slug: slug, Title: "Engineer"})
	require.NoError(t, err)
	return &bundle{
		pool:  pool,
		dbURL: dbURL,
		store: store,
		relay: &outbox.Relay{
			Store:           store,
			River:           insertOnlyClient(t, pool, nil),
			Logger:          slog.New(slog.DiscardHandler),
			Batch:           100,
			PollInterval:    time.Minute,
			MaxAttempts:     maxAttempts,
			RecordAnalytics: !opts.AnalyticsJobs,
		},
	}
}

// insertOnlyClient is a River client with no queues and no workers: it
// inserts jobs and runs nothing, so no goroutine outlives the test.
func insertOnlyClient(t *testing.T, pool *pgxpool.Pool, config *river.Config) *river.Client[pgx.Tx] {
	t.Helper()
	if config == nil {
		config = &river.Config{}
	}
	config.Logger = slog.New(slog.DiscardHandler)
	client, err := river.NewClient(riverpgxv5.New(pool), config)
	require.NoError(t, err)
	return client
}

// seed stores n applications with their application.submitted events in
// one transaction, the way Submit stores them (the deferred trigger checks
// each application has its event at commit). Events are a millisecond apart,
// oldest first in generate_series order.
func (b *bundle) seed(t *testing.T, n int) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), `
			INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
			SELECT gen_random_uuid(), p.id, 'Applicant ' || g, 'applicant' || g || '@example.com',
			       'applicant' || g || '@example.com', now() - ($1::int - g) * interval '1 millisecond'
			FROM postings p, generate_series(1, $1::int) AS g
			WHERE p.slug = $2`, n, slug)
		if err != nil {
			return err
		}
		_, err = tx.Exec(t.Context(), `
			INSERT INTO outbox_events (id, kind, aggregate_id, payload, created_at)
			SELECT gen_random_uuid(), 'application.submitted', a.id,
			       jsonb_build_object('application_id', a.id, 'posting_slug', p.slug), a.received_at
			FROM applications a JOIN postings p ON p.id = a.posting_id
			WHERE NOT EXISTS (SELECT 1 FROM outbox_events e WHERE e.aggregate_id = a.id)`)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`))
}

// submit stores one application through Store.Submit, exactly as the API
// does, and returns it.
func (b *bundle) submit(t *testing.T) application.Submission {
	t.Helper()
	id, err := uuid.NewV7()
	require.NoError(t, err)
	eventID, err := uuid.NewV7()
	require.NoError(t, err)
	email := "Applicant." + rand.Text()[:10] + "@Example.com"
	now := time.Now().UTC().Truncate(time.Microsecond)
	fp := sha256.Sum256([]byte(rand.Text()))
	sub := application.Submission{
		ID:          id.String(),
		EventID:     eventID.String(),
		PostingSlug: slug,
		Applicant: application.Applicant{
			FullName:    "Ada Lovelace",
			Email:       email,
			Phone:       "+44 20 7946 0000",
			CoverLetter: "I like engines.",
			Links:       []string{"https://example.com/ada"},
		},
		EmailNormalized: application.NormalizeEmail(email),
		ReceivedAt:      now,
		IdempotencyKey:  "key-" + rand.Text(),
		Fingerprint:     fp[:],
		KeyExpiresAt:    now.Add(48 * time.Hour),
		ResponseStatus:  201,
		ResponseBody:    fmt.Appendf(nil, `{"id":%q}`, id),
	}
	_, err = b.store.Submit(t.Context(), sub)
	require.NoError(t, err)
	return sub
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (b *bundle) dispatched(t *testing.T, eventID string) bool {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM outbox_events WHERE id = $1 AND dispatched_at IS NOT NULL`, eventID) == 1
}

// requireNothingDispatched checks the outbox is untouched: no event marked,
// no job inserted, no ledger row opened, no analytics record written.
func (b *bundle) requireNothingDispatched(t *testing.T) {
	t.Helper()
	require.Zero(t, b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NOT NULL`), "events marked dispatched")
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job`), "jobs inserted")
	require.Zero(t, b.count(t, `SELECT count(*) FROM deliveries`), "delivery rows opened")
	require.Zero(t, b.count(t, `SELECT count(*) FROM outbox_events WHERE quarantined_at IS NOT NULL`), "events quarantined")
	require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events`), "analytics records written")
}

// requireAllDispatchedOnce checks the outcome of draining n events: each
// dispatched, each application with exactly one confirmation email job and
// one queued delivery row, and each event with exactly one analytics record
// (the relay's, and no analytics job) or, with the http sink, exactly one
// analytics job.
func (b *bundle) requireAllDispatchedOnce(t *testing.T, n int) {
	t.Helper()
	require.Zero(t, b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`), "events left undispatched")
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NOT NULL`))
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email'`))
	require.Zero(t, b.count(t, `
		SELECT count(*) FROM (
			SELECT args->>'application_id' FROM river_job WHERE kind = 'confirmation_email'
			GROUP BY args->>'application_id' HAVING count(*) <> 1
		) AS doubled`), "an application has more than one confirmation email job")
	require.Zero(t, b.count(t, `
		SELECT count(*) FROM applications a
		WHERE NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'confirmation_email' AND j.args->>'application_id' = a.id::text)`),
		"an application has no confirmation email job")

	if b.relay.RecordAnalytics {
		require.Equal(t, n, b.count(t, `SELECT count(*) FROM river_job`), "jobs other than the emails")
		// The primary key makes a second record for an event impossible, so
		// the count and the join say exactly one each.
		require.Equal(t, n, b.count(t, `SELECT count(*) FROM analytics_events`))
		require.Zero(t, b.count(t, `
			SELECT count(*) FROM outbox_events e
			WHERE NOT EXISTS (SELECT 1 FROM analytics_events ae WHERE ae.event_id = e.id)`),
			"an event has no analytics record")
	} else {
		require.Equal(t, n, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'analytics_event'`))
		require.Equal(t, 2*n, b.count(t, `SELECT count(*) FROM river_job`))
		require.Zero(t, b.count(t, `
			SELECT count(*) FROM (
				SELECT args->>'event_id' FROM river_job WHERE kind = 'analytics_event'
				GROUP BY args->>'event_id' HAVING count(*) <> 1
			) AS doubled`), "an event has more than one analytics job")
		require.Zero(t, b.count(t, `
			SELECT count(*) FROM outbox_events e
			WHERE NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'analytics_event' AND j.args->>'event_id' = e.id::text)`),
			"an event has no analytics job")
		require.Zero(t, b.count(t, `SELECT count(*) FROM analytics_events`), "the relay wrote records for the http sink")
	}

	require.Equal(t, n, b.count(t, `SELECT count(*) FROM deliveries`))
	require.Zero(t, b.count(t, `
		SELECT count(*) FROM applications a LEFT JOIN deliveries d ON d.application_id = a.id
		WHERE d.state IS DISTINCT FROM 'queued'`), "an application without a queued delivery row")
}

// Relays in several workers never dispatch an event twice (SKIP LOCKED), so
// each event gets one set of jobs and, with the Postgres sink, one record.
func TestRelaysShareTheOutbox(t *testing.T) {
	t.Parallel()
	const events = 5000

	for _, tt := range []struct {
		relays        int
		analyticsJobs bool
	}{{2, false}, {4, false}, {2, true}} {
		name := fmt.Sprintf("%d relays, analytics recorded by the relays", tt.relays)
		if tt.analyticsJobs {
			name = fmt.Sprintf("%d relays, analytics jobs", tt.relays)
		}
		relays := tt.relays
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, &setupOpts{MaxConns: int32(relays) + 2, AnalyticsJobs: tt.analyticsJobs})
			b.seed(t, events)

			type tally struct{ rounds, events int }
			tallies := make([]tally, relays)
			errs := make([]error, relays)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range relays {
				// Each loop is its own relay, as in its own worker process,
				// sharing only the database.
				relay := cloneRelay(b.relay)
				relay.River = insertOnlyClient(t, b.pool, nil)
				wg.Go(func() {
					<-start
					for {
						n, err := relay.DispatchOnce(t.Context())
						if err != nil {
							errs[i] = err
							return
						}
						if n == 0 {
							return
						}
						tallies[i].rounds++
						tallies[i].events += n
					}
				})
			}
			began := time.Now()
			close(start)
			wg.Wait()
			elapsed := time.Since(began)

			total := 0
			for i, tl := range tallies {
				require.NoError(t, errs[i], "relay %d", i)
				t.Logf("relay %d: %d rounds, %d events", i, tl.rounds, tl.events)
				total += tl.events
			}
			t.Logf("%d relays dispatched %d events in %v", relays, total, elapsed)
			b.requireAllDispatchedOnce(t, events)
			require.Equal(t, events, total, "the relays' counts add up to more or less than the outbox held")
			for i, tl := range tallies {
				require.Positive(t, tl.events, "relay %d got no work: the others held it all", i)
			}
		})
	}
}

// Job args carry ids only; the analytics job's (the http sink's) is
// self-contained.
func TestJobArgsCarryIDsOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{AnalyticsJobs: true})
	subs := []application.Submission{b.submit(t), b.submit(t), b.submit(t)}

	n, err := b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, len(subs), n)
	b.requireAllDispatchedOnce(t, len(subs))

	rows, err := b.pool.Query(t.Context(), `SELECT kind, queue, max_attempts, args FROM river_job ORDER BY id`)
	require.NoError(t, err)
	type jobRow struct {
		Kind, Queue string
		MaxAttempts int
		Args        []byte
	}
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[jobRow])
	require.NoError(t, err)
	require.Len(t, jobs, 2*len(subs))

	byApp := map[string]application.Submission{}
	for _, s := range subs {
		byApp[s.ID] = s
	}
	for _, j := range jobs {
		var args map[string]any
		require.NoError(t, json.Unmarshal(j.Args, &args))
		keys := make([]string, 0, len(args))
		for k := range args {
			keys = append(keys, k)
		}
		require.Equal(t, maxAttempts, j.MaxAttempts, "%s job", j.Kind)

		sub, ok := byApp[args["application_id"].(string)]
		require.True(t, ok, "%s job for an unknown application: %s", j.Kind, j.Args)
		for _, personal := range []string{sub.Applicant.Email, sub.EmailNormalized, sub.Applicant.FullName,
			sub.Applicant.Phone, sub.Applicant.CoverLetter, sub.Applicant.Links[0]} {
			require.NotContains(t, string(j.Args), personal, "personal data in %s job args", j.Kind)
		}

		switch j.Kind {
		case "confirmation_email":
			require.ElementsMatch(t, []string{"application_id"}, keys)
			require.Equal(t, "email", j.Queue)
		case "analytics_event":
			require.ElementsMatch(t, []string{"event_id", "event_kind", "application_id", "posting_slug", "occurred_at"}, keys)
			require.Equal(t, "analytics", j.Queue)
			require.Equal(t, sub.EventID, args["event_id"])
			require.Equal(t, application.EventSubmitted, args["event_kind"])
			require.Equal(t, slug, args["posting_slug"])
			occurred, err := time.Parse(time.RFC3339Nano, args["occurred_at"].(string))
			require.NoError(t, err)
			var created time.Time
			require.NoError(t, b.pool.QueryRow(t.Context(),
				`SELECT created_at FROM outbox_events WHERE id = $1`, sub.EventID).Scan(&created))
			require.True(t, created.Equal(occurred), "occurred_at %v, event created at %v", occurred, created)
		default:
			t.Fatalf("unexpected job kind %q", j.Kind)
		}
	}
}

// failOn makes every statement of the given kind on table fail, by a trigger
// in this test's private database.
func failOn(t *testing.T, pool *pgxpool.Pool, op, table string) {
	t.Helper()
	_, err := pool.Exec(t.Context(), fmt.Sprintf(`
		CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected failure'; END; $$;
		CREATE TRIGGER test_fail BEFORE %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION test_fail();`, op, table))
	require.NoError(t, err)
}

// A round that fails anywhere leaves nothing behind: no job, no ledger row,
// no analytics record, no event marked.
func TestDispatchIsAtomic(t *testing.T) {
	t.Parallel()
	const events = 10

	tests := []struct {
		name string
		// dispatch runs one failing round.
		dispatch func(t *testing.T, b *bundle) (int, error)
		// wantErr is in the round's error.
		wantErr string
	}{
		{
			name: "River cannot insert",
			dispatch: func(t *testing.T, b *bundle) (int, error) {
				relay := cloneRelay(b.relay)
				relay.River = insertOnlyClient(t, b.pool, &river.Config{Schema: "no_such_schema"})
				return relay.DispatchOnce(t.Context())
			},
			wantErr: "no_such_schema",
		},
		{
			name: "enqueue fails after inserting the jobs",
			dispatch: func(t *testing.T, b *bundle) (int, error) {
				d, err := b.store.DispatchEventsAndRecord(t.Context(), 100, func(ctx context.Context, tx pgx.Tx, evs []application.Event) error {
					var params []river.InsertManyParams
					for _, ev := range evs {
						params = append(params, river.InsertManyParams{Args: probeArgs{EventID: ev.ID}})
					}
					if _, err := b.relay.River.InsertManyTx(ctx, tx, params); err != nil {
						return err
					}
					var inTx int
					if err := tx.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&inTx); err != nil {
						return err
					}
					require.Equal(t, len(evs), inTx, "the jobs were not inserted in the round's transaction")
					return errors.New("injected failure")
				})
				return d.Events, err
			},
			wantErr: "injected failure",
		},
		{
			name: "the ledger insert fails",
			dispatch: func(t *testing.T, b *bundle) (int, error) {
				failOn(t, b.pool, "INSERT", "deliveries")
				return b.relay.DispatchOnce(t.Context())
			},
			wantErr: "injected failure",
		},
		{
			name: "the analytics insert fails",
			dispatch: func(t *testing.T, b *bundle) (int, error) {
				failOn(t, b.pool, "INSERT", "analytics_events")
				return b.relay.DispatchOnce(t.Context())
			},
			wantErr: "injected failure",
		},
		{
			// The records are written before the events are marked: the
			// failure must take them back.
			name: "marking dispatched fails",
			dispatch: func(t *testing.T, b *bundle) (int, error) {
				failOn(t, b.pool, "UPDATE", "outbox_events")
				return b.relay.DispatchOnce(t.Context())
			},
			wantErr: "injected failure",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.seed(t, events)

			n, err := tt.dispatch(t, b)
			require.ErrorContains(t, err, tt.wantErr)
			require.Zero(t, n)
			b.requireNothingDispatched(t)

			// The events are still there for the next round.
			_, err = b.pool.Exec(t.Context(), `DROP TRIGGER IF EXISTS test_fail ON deliveries; DROP TRIGGER IF EXISTS test_fail ON outbox_events;
				DROP TRIGGER IF EXISTS test_fail ON analytics_events`)
			require.NoError(t, err)
			n, err = b.relay.DispatchOnce(t.Context())
			require.NoError(t, err)
			require.Equal(t, events, n)
			b.requireAllDispatchedOnce(t, events)
		})
	}
}

// probeArgs is a job kind only the atomicity test inserts.
type probeArgs struct {
	EventID string `json:"event_id"`
}

func (probeArgs) Kind() string { return "outbox_probe" }

func TestDispatchSkipsLockedEvents(t *testing.T) {
	t.Parallel()
	const events = 20
	b := setup(t, nil)
	b.seed(t, events)

	// Another relay's transaction holds the oldest event, the first one a
	// claim would take.
	tx, err := b.pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	var locked string
	require.NoError(t, tx.QueryRow(t.Context(), `
		SELECT id::text FROM outbox_events WHERE dispatched_at IS NULL
		ORDER BY created_at, id LIMIT 1 FOR UPDATE`).Scan(&locked))

	// A relay that waited for the lock would run into this deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	began := time.Now()
	n, err := b.relay.DispatchOnce(ctx)
	require.NoError(t, err, "the round waited for the locked event")
	t.Logf("dispatched %d of %d events past a locked one in %v", n, events, time.Since(began))
	require.Equal(t, events-1, n)
	require.False(t, b.dispatched(t, locked))
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE args->>'event_id' = $1`, locked))
	require.Equal(t, events-1, b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NOT NULL`))

	// Once the other transaction lets go, the event is dispatched.
	require.NoError(t, tx.Rollback(t.Context()))
	n, err = b.relay.DispatchOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	b.requireAllDispatchedOnce(t, events)
}

// listenerPID waits for the relay's listener to be connected to this
// test's database, LISTENing, on a backend other than previous, and
// returns that backend's pid.
func (b *bundle) listenerPID(t *testing.T, previous int) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		err := b.pool.QueryRow(t.Context(), `
			SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> $1 AND pid <> pg_backend_pid()`,
			previous).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	}, 10*time.Second, 10*time.Millisecond, "the relay's listener is not LISTENing")
	return pid
}

// unnoticedEvent submits an application without waking the relay and
// returns its event once the relay has left it undispatched for quiet: the
// relay is then idle, waiting for a wake-up or its one-minute poll. A
// wake-up already on its way (the listener's catch-up after it connects)
// may take the first tries; it tries again.
func (b *bundle) unnoticedEvent(t *testing.T, quiet time.Duration) string {
	t.Helper()
	for range 10 {
		sub := b.submit(t)
		deadline := time.Now().Add(quiet)
		for time.Now().Before(deadline) && !b.dispatched(t, sub.EventID) {
			time.Sleep(10 * time.Millisecond)
		}
		if !b.dispatched(t, sub.EventID) {
			return sub.EventID
		}
	}
	t.Fatal("the relay keeps dispatching events nobody woke it for")
	return ""
}

// requireDispatchedWithin waits for eventID to be dispatched.
func (b *bundle) requireDispatchedWithin(t *testing.T, eventID string, within time.Duration, what string) {
	t.Helper()
	began := time.Now()
	require.Eventually(t, func() bool { return b.dispatched(t, eventID) }, within, 10*time.Millisecond,
		"%s: event not dispatched within %v", what, within)
	t.Logf("%s: dispatched %v after", what, time.Since(began).Round(time.Millisecond))
}

func TestRelayRunWakesOnNotify(t *testing.T) {
	t.Parallel()
	const quiet = 300 * time.Millisecond
	const wakeWithin = 2 * time.Second
	b := setup(t, nil)
	logs := &testkit.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))

	// The listener connects through a gate, so the test can act while it is
	// reconnecting.
	u, err := url.Parse(b.dbURL)
	require.NoError(t, err)
	g := startGate(t, u.Host)
	listenURL := g.url(t, b.dbURL)

	waker := postgres.NewWaker(b.pool, logger, 10*time.Millisecond)
	relay := cloneRelay(b.relay)
	relay.Logger = logger
	relay.PollInterval = time.Minute // longer than the test: only a wake-up dispatches
	relay.Listen = func(ctx context.Context, wake func()) {
		postgres.Listen(ctx, listenURL, postgres.OutboxChannel, logger, wake)
	}
	// An event stored before the relay starts is dispatched on start.
	first := b.submit(t)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { waker.Run(ctx) })
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		relay.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		<-ran
	})

	b.requireDispatchedWithin(t, first.EventID, wakeWithin, "stored before start")

	pid := b.listenerPID(t, 0)
	ev := b.unnoticedEvent(t, quiet)
	waker.Wake()
	b.requireDispatchedWithin(t, ev, wakeWithin, "NOTIFY")

	// The listener's backend dies. While it reconnects, an application is
	// stored and its NOTIFY goes nowhere; once the listener is back it must
	// have the relay look, or the event waits for the poll.
	for len(g.accepted) > 0 {
		<-g.accepted // the first connection's
	}
	g.shut()
	var terminated bool
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&terminated))
	require.True(t, terminated)
	select {
	case <-g.accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not try to reconnect within 10s")
	}
	missed := b.unnoticedEvent(t, quiet)
	waker.Wake() // lost: nobody is listening
	g.open()
	b.listenerPID(t, pid)
	b.requireDispatchedWithin(t, missed, wakeWithin, "stored while the listener was away")

	// And later notifications wake the relay again.
	ev = b.unnoticedEvent(t, quiet)
	_, err = b.pool.Exec(t.Context(), `SELECT pg_notify($1, '')`, postgres.OutboxChannel)
	require.NoError(t, err)
	b.requireDispatchedWithin(t, ev, wakeWithin, "NOTIFY after reconnecting")
	require.Contains(t, logs.String(), "outbox listener disconnected; reconnecting")

	cancel()
	select {
	case <-ran:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of its context being cancelled")
	}
}

// A failed round is logged and retried at the next poll (no Listen here: the
// poll is the only wake-up), and a backlog larger than a batch is drained
// in full.
func TestRelayRunRetriesFailedRoundsAtThePoll(t *testing.T) {
	t.Parallel()
	const events = 25
	b := setup(t, nil)
	b.seed(t, events)
	failOn(t, b.pool, "UPDATE", "outbox_events")

	logs := &testkit.Buffer{}
	relay := cloneRelay(b.relay)
	relay.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	relay.Batch = 10
	relay.PollInterval = 50 * time.Millisecond
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
		return strings.Count(logs.String(), "outbox dispatch failed") >= 2
	}, 5*time.Second, 10*time.Millisecond, "failed rounds are not logged, or not retried at the poll")
	b.requireNothingDispatched(t)
	require.NotContains(t, logs.String(), "Applicant", "personal data in the relay's log")
	require.NotContains(t, logs.String(), "@example.com", "personal data in the relay's log")

	_, err := b.pool.Exec(t.Context(), `DROP TRIGGER test_fail ON outbox_events`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL`) == 0
	}, 5*time.Second, 10*time.Millisecond, "the poll did not dispatch the backlog")
	b.requireAllDispatchedOnce(t, events)

	cancel()
	select {
	case <-ran:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of its context being cancelled")
	}
}

// cloneRelay copies a relay's settings into a new one (a Relay holds state
// and must not be copied by value).
func cloneRelay(r *outbox.Relay) *outbox.Relay {
	return &outbox.Relay{
		Store:           r.Store,
		River:           r.River,
		Logger:          r.Logger,
		Batch:           r.Batch,
		PollInterval:    r.PollInterval,
		MaxAttempts:     r.MaxAttempts,
		RecordAnalytics: r.RecordAnalytics,
		Listen:          r.Listen,
		RoundTimeout:    r.RoundTimeout,
		Metrics:         r.Metrics,
	}
}

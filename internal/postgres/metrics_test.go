package postgres_test

import (
	"bytes"
	"context"
	"net/url"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// queryCounter counts the queries a pool runs.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func countingPool(tb testing.TB, dbURL string) (*pgxpool.Pool, *queryCounter) {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(tb, err)
	counter := &queryCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool, counter
}

// seedRaw runs statements as the superuser with triggers and foreign keys
// off (session_replication_role = replica): history rows by the million
// need no applications behind them to be counted.
func seedRaw(tb testing.TB, dbURL string, statements ...string) {
	tb.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(tb, err)
	u.User = url.User("postgres")
	conn, err := pgx.Connect(context.Background(), u.String())
	require.NoError(tb, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "SET session_replication_role = replica")
	require.NoError(tb, err)
	for _, s := range statements {
		_, err := conn.Exec(context.Background(), s)
		require.NoError(tb, err, s)
	}
}

// scrape collects c as a scrape would, in the text format.
func scrape(tb testing.TB, c prometheus.Collector) []byte {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(tb, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(tb, err)
	var text bytes.Buffer
	for _, f := range families {
		_, err := expfmt.MetricFamilyToText(&text, f)
		require.NoError(tb, err)
	}
	return text.Bytes()
}

// sample reads one series (name and labels exactly as exposed) from a
// collector; -1 when it is absent.
func sample(tb testing.TB, c prometheus.Collector, series string) float64 {
	tb.Helper()
	text := scrape(tb, c)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(tb, err)
	return v
}

var testKinds = []string{"confirmation_email", "analytics_event"}

func TestGauges(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	_, err := store.CreatePosting(t.Context(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "go-engineer", 10)
	seedRaw(t, dbURL,
		// 10 events: 3 waiting (the oldest for a minute), 2 quarantined, 5 dispatched.
		`UPDATE outbox_events SET created_at = now() - interval '60 seconds' WHERE id = (SELECT min(id::text)::uuid FROM outbox_events)`,
		`UPDATE outbox_events SET dispatched_at = now() WHERE id IN (SELECT id FROM outbox_events ORDER BY created_at DESC LIMIT 5)`,
		`UPDATE outbox_events SET quarantined_at = now(), quarantine_error = 'test'
		 WHERE id IN (SELECT id FROM outbox_events WHERE dispatched_at IS NULL ORDER BY created_at DESC LIMIT 2)`,
		`INSERT INTO deliveries (application_id, state, sent_at)
		 SELECT gen_random_uuid(), s, CASE WHEN s = 'sent' THEN now() END
		 FROM unnest(ARRAY['queued','queued','queued','queued','retrying','failed','failed','sent','sent','sent']) AS s`,
		`INSERT INTO river_job (kind, args, state, queue, scheduled_at, attempt, attempted_at, finalized_at)
		 SELECT k, '{}', s::river_job_state, q, now() - interval '30 seconds', 1, now(),
		        CASE WHEN s = 'completed' THEN now() END
		 FROM (VALUES ('confirmation_email','available','email'), ('confirmation_email','available','email'),
		              ('analytics_event','retryable','analytics'), ('confirmation_email','completed','email')) AS v(k, s, q)`,
	)

	g := postgres.NewGauges(store, postgres.GaugesOpts{Work: true, Kinds: testKinds, Queues: []string{"email", "analytics"}, MaxAge: time.Hour})
	require.Equal(t, 3.0, sample(t, g, `intake_outbox_undispatched`))
	require.InDelta(t, 60, sample(t, g, `intake_outbox_oldest_undispatched_age_seconds`), 5)
	require.Equal(t, 2.0, sample(t, g, `intake_outbox_quarantined`))
	require.Equal(t, 4.0, sample(t, g, `intake_deliveries{state="queued"}`))
	require.Equal(t, 1.0, sample(t, g, `intake_deliveries{state="retrying"}`))
	require.Equal(t, 2.0, sample(t, g, `intake_deliveries{state="failed"}`))
	require.Equal(t, 0.0, sample(t, g, `intake_deliveries{state="sending"}`))
	require.Equal(t, -1.0, sample(t, g, `intake_deliveries{state="sent"}`), "sent is history: its rate is intake_email_sends_total")
	require.Equal(t, 2.0, sample(t, g, `intake_jobs{kind="confirmation_email",state="available"}`))
	require.Equal(t, 1.0, sample(t, g, `intake_jobs{kind="analytics_event",state="retryable"}`))
	require.Equal(t, 0.0, sample(t, g, `intake_jobs{kind="analytics_event",state="available"}`), "known kinds are reported at zero")
	require.Equal(t, -1.0, sample(t, g, `intake_jobs{kind="confirmation_email",state="completed"}`))
	require.InDelta(t, 30, sample(t, g, `intake_job_oldest_available_age_seconds{queue="email"}`), 5)
	require.Equal(t, 0.0, sample(t, g, `intake_job_oldest_available_age_seconds{queue="analytics"}`))

	// Served from the snapshot: new rows do not show until it ages out.
	_, err = store.CreatePosting(t.Context(), application.NewPosting{Slug: "rust-engineer", Title: "Rust engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "rust-engineer", 5)
	require.Equal(t, 3.0, sample(t, g, `intake_outbox_undispatched`))
}

func TestGaugesRefreshAndCap(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	_, err := store.CreatePosting(t.Context(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "go-engineer", 3)

	g := postgres.NewGauges(store, postgres.GaugesOpts{Work: true, Cap: 5, MaxAge: 50 * time.Millisecond})
	require.Equal(t, 3.0, sample(t, g, `intake_outbox_undispatched`))
	_, err = store.CreatePosting(t.Context(), application.NewPosting{Slug: "rust-engineer", Title: "Rust engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "rust-engineer", 10)
	require.Eventually(t, func() bool { return sample(t, g, `intake_outbox_undispatched`) == 5 }, 5*time.Second, 20*time.Millisecond,
		"the next snapshot sees the new events, counted up to the cap")
	require.Less(t, sample(t, g, `intake_metrics_snapshot_age_seconds`), 1.0)
}

// The API's collector reports the outbox alone: no River or ledger query.
func TestGaugesOutboxOnly(t *testing.T) {
	t.Parallel()
	_, dbURL := testkit.NewPool(t)
	pool, queries := countingPool(t, dbURL)
	g := postgres.NewGauges(postgres.NewStore(pool), postgres.GaugesOpts{})
	require.Equal(t, 0.0, sample(t, g, `intake_outbox_undispatched`))
	require.Equal(t, -1.0, sample(t, g, `intake_outbox_quarantined`))
	require.Equal(t, int64(1), queries.n.Load())
}

// A refused database keeps the last snapshot and counts the failure; it
// is retried at the snapshot's pace, not at every scrape.
func TestGaugesKeepLastSnapshotOnError(t *testing.T) {
	t.Parallel()
	pool, err := postgres.NewPool(t.Context(), "postgres://postgres@127.0.0.1:1/never?sslmode=disable&connect_timeout=1", nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	g := postgres.NewGauges(postgres.NewStore(pool), postgres.GaugesOpts{MaxAge: time.Hour})
	require.Equal(t, -1.0, sample(t, g, `intake_outbox_undispatched`), "nothing known, nothing made up")
	require.Equal(t, 1.0, sample(t, g, `intake_metrics_refresh_errors_total`))
}

// BenchmarkMetricsScrape measures what a scrape costs with a million rows
// of history in each big table (sent deliveries, completed River jobs,
// dispatched events): "status" runs what intakectl status runs (whole-table
// counts), "refresh" takes one Gauges snapshot, "scrape" is a scrape served
// from the snapshot. queries/op is the queries each one runs.
//
//	go test ./internal/postgres -run '^$' -bench MetricsScrape -benchtime 20x
func BenchmarkMetricsScrape(b *testing.B) {
	const rows = 1_000_000
	_, dbURL := testkit.NewPool(b)
	seedRaw(b, dbURL,
		`INSERT INTO deliveries (application_id, state, sent_at) SELECT gen_random_uuid(), 'sent', now() FROM generate_series(1, 1000000)`,
		`INSERT INTO deliveries (application_id, state) SELECT gen_random_uuid(), 'retrying' FROM generate_series(1, 100)`,
		`INSERT INTO river_job (kind, args, state, queue, attempt, attempted_at, finalized_at)
		 SELECT CASE WHEN i % 2 = 0 THEN 'confirmation_email' ELSE 'analytics_event' END, '{}', 'completed',
		        CASE WHEN i % 2 = 0 THEN 'email' ELSE 'analytics' END, 1, now(), now()
		 FROM generate_series(1, 1000000) AS i`,
		`INSERT INTO river_job (kind, args, state, queue) SELECT 'confirmation_email', '{}', 'available', 'email' FROM generate_series(1, 100)`,
		`INSERT INTO outbox_events (id, kind, aggregate_id, payload, created_at, dispatched_at)
		 SELECT gen_random_uuid(), 'application.submitted', gen_random_uuid(), '{}', now(), now() FROM generate_series(1, 1000000)`,
		`VACUUM ANALYZE deliveries`, `VACUUM ANALYZE river_job`, `VACUUM ANALYZE outbox_events`,
	)
	pool, queries := countingPool(b, dbURL)
	store := postgres.NewStore(pool)
	b.Logf("%d rows in deliveries, river_job and outbox_events each", rows)

	run := func(b *testing.B, f func()) {
		f() // warm the pool and the caches
		start := queries.n.Load()
		b.ResetTimer()
		for b.Loop() {
			f()
		}
		b.ReportMetric(float64(queries.n.Load()-start)/float64(b.N), "queries/op")
	}
	b.Run("status", func(b *testing.B) {
		run(b, func() {
			_, err := store.Status(context.Background(), 15*time.Second)
			require.NoError(b, err)
		})
	})
	opts := postgres.GaugesOpts{Work: true, Kinds: testKinds, Queues: []string{"email", "analytics", "maintenance"}}
	b.Run("refresh", func(b *testing.B) {
		run(b, func() {
			opts.MaxAge = time.Nanosecond // every scrape takes a snapshot
			scrape(b, postgres.NewGauges(store, opts))
		})
	})
	b.Run("scrape", func(b *testing.B) {
		opts.MaxAge = time.Hour
		g := postgres.NewGauges(store, opts)
		run(b, func() {
			scrape(b, g)
		})
	})
}

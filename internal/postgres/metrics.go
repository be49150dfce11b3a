package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intake/intake/db"
)

// GaugesOpts choose what a Gauges collector counts.
type GaugesOpts struct {
	// Work adds what only the worker reports: River's live jobs, the
	// delivery ledger's states and the quarantined events. Without it the
	// collector reports the outbox backlog alone, which the API exports too
	// so that "outbox stuck" can fire when no worker is left to say so.
	Work bool
	// Kinds and Queues are River's job kinds and queues, reported at zero
	// when they have no job, so a series never vanishes when its backlog
	// drains.
	Kinds  []string
	Queues []string
	// MaxAge is how long a snapshot is served before the next scrape
	// queries again; zero means 5 s.
	MaxAge time.Duration
	// Cap bounds every count: a query stops reading at Cap rows, so a
	// gauge at Cap means "at least Cap"; zero means 100,000.
	Cap int64
	// Logger hears about failed refreshes; the last good snapshot is
	// served meanwhile, and intake_metrics_snapshot_age_seconds grows.
	Logger *slog.Logger
}

// Gauges is a Prometheus collector for the numbers that need a query. A
// scrape is served from a snapshot at most MaxAge old, and a refresh reads
// only indexes and stops at Cap rows: however often Prometheus scrapes and
// however much history the tables hold, the database sees a few small
// queries every MaxAge.
type Gauges struct {
	store *Store
	opts  GaugesOpts

	mu     sync.Mutex
	at     time.Time // when snap was taken; zero before the first success
	tried  time.Time // when a refresh was last attempted
	snap   gaugeSnapshot
	errors prometheus.Counter
}

type gaugeSnapshot struct {
	undispatched  int64
	oldestSeconds float64
	quarantined   int64
	jobs          map[[2]string]int64 // kind, state
	oldestByQueue map[string]float64
	deliveries    map[string]int64
}

// The states River keeps a job in before it is finalized; the finalized
// ones (completed, cancelled, discarded) are history.
var liveJobStates = []string{"available", "pending", "retryable", "running", "scheduled"}

var (
	descUndispatched = prometheus.NewDesc("intake_outbox_undispatched",
		"Outbox events waiting for the relay (capped).", nil, nil)
	descOldest = prometheus.NewDesc("intake_outbox_oldest_undispatched_age_seconds",
		"Age of the oldest outbox event waiting for the relay; 0 when none waits.", nil, nil)
	descQuarantined = prometheus.NewDesc("intake_outbox_quarantined",
		"Outbox events set aside because they cannot become jobs (capped).", nil, nil)
	descJobs = prometheus.NewDesc("intake_jobs",
		"River jobs not yet finalized, by kind and state (capped per state).", []string{"kind", "state"}, nil)
	descJobOldest = prometheus.NewDesc("intake_job_oldest_available_age_seconds",
		"How long the next available job of a queue has waited; 0 when none waits.", []string{"queue"}, nil)
	descDeliveries = prometheus.NewDesc("intake_deliveries",
		"Confirmation deliveries by ledger state, sent excluded (capped).", []string{"state"}, nil)
	descSnapshotAge = prometheus.NewDesc("intake_metrics_snapshot_age_seconds",
		"Age of the database snapshot the gauges above come from.", nil, nil)
)

// NewGauges returns a collector over store; register it once.
func NewGauges(store *Store, opts GaugesOpts) *Gauges {
	if opts.MaxAge <= 0 {
		opts.MaxAge = 5 * time.Second
	}
	if opts.Cap <= 0 {
		opts.Cap = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gauges{store: store, opts: opts, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "intake_metrics_refresh_errors_total",
		Help: "Snapshots of the database gauges that failed.",
	})}
}

func (g *Gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUndispatched
	ch <- descOldest
	ch <- descSnapshotAge
	if g.opts.Work {
		ch <- descQuarantined
		ch <- descJobs
		ch <- descJobOldest
		ch <- descDeliveries
	}
	g.errors.Describe(ch)
}

func (g *Gauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	// A failing database is retried at the same pace as a healthy one is
	// read, not at every scrape.
	if now.Sub(g.tried) >= g.opts.MaxAge {
		g.tried = now
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		snap, err := g.refresh(ctx)
		cancel()
		if err != nil {
			g.errors.Inc()
			g.opts.Logger.Warn("metrics snapshot failed; serving the previous one", "err", err)
		} else {
			g.snap, g.at = snap, now
		}
	}
	g.errors.Collect(ch)
	if g.at.IsZero() {
		return // nothing known yet: no series beats a made-up zero
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descSnapshotAge, now.Sub(g.at).Seconds())
	gauge(descUndispatched, float64(g.snap.undispatched))
	gauge(descOldest, g.snap.oldestSeconds)
	if !g.opts.Work {
		return
	}
	gauge(descQuarantined, float64(g.snap.quarantined))
	for k, n := range g.snap.jobs {
		gauge(descJobs, float64(n), k[0], k[1])
	}
	for q, s := range g.snap.oldestByQueue {
		gauge(descJobOldest, s, q)
	}
	for state, n := range g.snap.deliveries {
		gauge(descDeliveries, float64(n), state)
	}
}

// refresh takes a snapshot: two queries for the outbox, three more for the
// worker's view.
func (g *Gauges) refresh(ctx context.Context) (gaugeSnapshot, error) {
	var s gaugeSnapshot
	backlog, err := g.store.q.MetricsOutboxBacklog(ctx, g.opts.Cap)
	if err != nil {
		return s, classify(err)
	}
	s.undispatched, s.oldestSeconds = backlog.Undispatched, backlog.OldestSeconds
	if !g.opts.Work {
		return s, nil
	}
	if s.quarantined, err = g.store.q.MetricsOutboxQuarantined(ctx, g.opts.Cap); err != nil {
		return s, classify(err)
	}

	s.jobs = make(map[[2]string]int64)
	for _, kind := range g.opts.Kinds {
		for _, state := range liveJobStates {
			s.jobs[[2]string{kind, state}] = 0
		}
	}
	rows, err := g.store.pool.Query(ctx, db.RiverMetricsJobs, g.opts.Cap)
	if err != nil {
		return s, classify(err)
	}
	var kind, state string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&kind, &state, &n}, func() error {
		s.jobs[[2]string{kind, state}] = n
		return nil
	}); err != nil {
		return s, classify(err)
	}

	s.oldestByQueue = make(map[string]float64, len(g.opts.Queues))
	rows, err = g.store.pool.Query(ctx, db.RiverMetricsOldest, g.opts.Queues)
	if err != nil {
		return s, classify(err)
	}
	var queue string
	var seconds float64
	if _, err := pgx.ForEachRow(rows, []any{&queue, &seconds}, func() error {
		s.oldestByQueue[queue] = seconds
		return nil
	}); err != nil {
		return s, classify(err)
	}

	deliveries, err := g.store.q.MetricsDeliveryStates(ctx, g.opts.Cap)
	if err != nil {
		return s, classify(err)
	}
	s.deliveries = make(map[string]int64, len(deliveries))
	for _, d := range deliveries {
		s.deliveries[d.State] = d.Deliveries
	}
	return s, nil
}

// PoolCollector reports a connection pool's statistics (pgxpool.Stat):
// read from memory, no query.
func PoolCollector(pool *pgxpool.Pool) prometheus.Collector {
	return poolCollector{pool}
}

type poolCollector struct{ pool *pgxpool.Pool }

var (
	descPoolAcquired = prometheus.NewDesc("intake_db_pool_acquired_connections", "Connections in use.", nil, nil)
	descPoolIdle     = prometheus.NewDesc("intake_db_pool_idle_connections", "Idle connections.", nil, nil)
	descPoolTotal    = prometheus.NewDesc("intake_db_pool_connections", "Open connections.", nil, nil)
	descPoolMax      = prometheus.NewDesc("intake_db_pool_max_connections", "The pool's size limit.", nil, nil)
	descPoolAcquires = prometheus.NewDesc("intake_db_pool_acquires_total", "Connections handed out.", nil, nil)
	descPoolWaits    = prometheus.NewDesc("intake_db_pool_empty_acquires_total",
		"Acquires that had to wait because no connection was free.", nil, nil)
	descPoolWaitTime = prometheus.NewDesc("intake_db_pool_acquire_wait_seconds_total",
		"Time spent acquiring connections.", nil, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolAcquired, descPoolIdle, descPoolTotal, descPoolMax, descPoolAcquires, descPoolWaits, descPoolWaitTime} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descPoolAcquired, float64(s.AcquiredConns()))
	gauge(descPoolIdle, float64(s.IdleConns()))
	gauge(descPoolTotal, float64(s.TotalConns()))
	gauge(descPoolMax, float64(s.MaxConns()))
	counter(descPoolAcquires, float64(s.AcquireCount()))
	counter(descPoolWaits, float64(s.EmptyAcquireCount()))
	counter(descPoolWaitTime, s.AcquireDuration().Seconds())
}

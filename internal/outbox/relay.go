// Package outbox moves committed outbox events into River: the relay claims
// undispatched events, inserts their jobs (with the Postgres analytics sink,
// writes their analytics records instead of analytics jobs) and marks them
// dispatched in one transaction, woken by NOTIFY and polling as a fallback.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
)

// Relay drains the outbox into River. Any number of relays may run (one per
// worker process): they share the work through SKIP LOCKED.
type Relay struct {
	Store  *postgres.Store
	River  *river.Client[pgx.Tx]
	Logger *slog.Logger
	// Batch is the most events one transaction dispatches.
	Batch int
	// PollInterval is how often the relay looks when nothing woke it.
	PollInterval time.Duration
	// MaxAttempts is given to every job inserted (job.RetrySchedule).
	MaxAttempts int
	// RecordAnalytics has each round write its events' analytics records
	// itself, in its own transaction, instead of inserting an analytics job
	// per event (INTAKE_ANALYTICS_SINK=postgres, the default; see
	// postgres.Store.DispatchEventsAndRecord for why that is exactly one
	// record per event). Unset, every event gets an analytics job, which
	// the http sink needs: its endpoint may be offline for a day, and the
	// job retries on its own queue while email goes on.
	RecordAnalytics bool
	// Listen, when set, blocks delivering wake-ups to its argument until ctx
	// ends (postgres.Listen in production).
	Listen func(ctx context.Context, wake func())
	// RoundTimeout bounds one round (DispatchOnce); zero means
	// DefaultRoundTimeout. A round takes milliseconds; the bound is for a
	// connection that went silently dead (no reset: a pooler, load balancer
	// or NAT that lost its state), on which the round would otherwise wait
	// forever and the relay would never dispatch again.
	RoundTimeout time.Duration
	// Metrics observes each round's duration and events, and the
	// analytics records it writes (nil: none).
	Metrics *job.Metrics

	// lastRound is when a round last succeeded (unix nanoseconds), for
	// Stalled: rounds that keep failing, or one that hangs, make it stale.
	lastRound atomic.Int64
}

// DefaultRoundTimeout is the Relay's RoundTimeout when none is set.
const DefaultRoundTimeout = 10 * time.Second

// Run dispatches until ctx is done. A round in progress when ctx ends
// either commits or rolls back whole; nothing is left half-dispatched.
func (r *Relay) Run(ctx context.Context) {
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	if r.Listen != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Listen(ctx, signal)
		}()
		defer func() { <-done }()
	}

	ticker := time.NewTicker(r.PollInterval)
	defer ticker.Stop()
	for {
		r.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-ticker.C:
		}
	}
}

// Stalled reports an error when the relay is running but no round has
// succeeded for longer than a round may take plus a poll interval: it is
// stuck or failing, and the worker's /readyz says so.
func (r *Relay) Stalled(now time.Time) error {
	last := r.lastRound.Load()
	if last == 0 {
		return nil // not started yet
	}
	if idle := now.Sub(time.Unix(0, last)); idle > 2*r.roundTimeout()+r.PollInterval {
		return fmt.Errorf("outbox relay has not completed a round for %s", idle.Round(time.Second))
	}
	return nil
}

// drain dispatches batches until the outbox looks empty.
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		d, err := r.round(ctx)
		r.Metrics.RelayRound(time.Since(start), d.Events+len(d.Quarantined), err)
		if err == nil {
			r.lastRound.Store(time.Now().UnixNano())
		}
		if err != nil {
			if ctx.Err() == nil {
				r.Logger.Warn("outbox dispatch failed; retrying at the next wake-up or poll", "err", err)
			}
			return
		}
		if d.Events+len(d.Quarantined) < r.Batch {
			return
		}
	}
}

func (r *Relay) roundTimeout() time.Duration {
	if r.RoundTimeout <= 0 {
		return DefaultRoundTimeout
	}
	return r.RoundTimeout
}

// DispatchOnce runs one round: at most Batch events become River jobs, in
// one transaction, within RoundTimeout. It returns how many events it
// dispatched; events that cannot become jobs are quarantined and logged.
func (r *Relay) DispatchOnce(ctx context.Context) (int, error) {
	d, err := r.round(ctx)
	return d.Events, err
}

func (r *Relay) round(ctx context.Context) (postgres.Dispatched, error) {
	ctx, cancel := context.WithTimeout(ctx, r.roundTimeout())
	defer cancel()
	dispatch := r.Store.DispatchEvents
	if r.RecordAnalytics {
		dispatch = r.Store.DispatchEventsAndRecord
	}
	d, err := dispatch(ctx, r.Batch, r.insertJobs)
	for _, occurredAt := range d.Recorded {
		r.Metrics.AnalyticsRecord(nil, occurredAt)
	}
	for _, q := range d.Quarantined {
		// The error names a field or a job problem, never a value from the
		// application, so it is safe to log.
		r.Logger.Error("outbox event quarantined", "event_id", q.ID, "kind", q.Kind, "error", q.Error,
			"action", "not dispatched until retried: fix the cause, then intakectl outbox retry "+q.ID)
	}
	return d, err
}

// insertJobs inserts the River jobs of events in tx. Without an analytics
// job, events of a kind other than application.submitted make none, and
// River refuses an insert of nothing.
func (r *Relay) insertJobs(ctx context.Context, tx pgx.Tx, events []application.Event) error {
	fanOut := job.ForEvent
	if r.RecordAnalytics {
		fanOut = job.ForEventWithoutAnalytics
	}
	params := make([]river.InsertManyParams, 0, 2*len(events))
	for _, ev := range events {
		params = append(params, fanOut(ev, r.MaxAttempts)...)
	}
	if len(params) == 0 {
		return nil
	}
	_, err := r.River.InsertManyTx(ctx, tx, params)
	return err
}

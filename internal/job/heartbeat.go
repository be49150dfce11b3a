package job

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intake/intake/internal/postgres"
)

// Heartbeat is the worker's proof of life, and what makes a killed
// worker's jobs run again within seconds instead of River's RescueAfter.
//
// Every Interval, one transaction (one commit) records the beat
// (worker_heartbeats, by the database's clock), renews the delivery leases
// of the email attempts in flight in this process to Lease from now, and
// rescues the running jobs of workers whose last beat is older than
// DeadAfter: every worker rescues, not only River's leader, so a killed
// leader's jobs do not wait for River to elect another one, and the rescue
// costs no commit of its own.
//
// It is safe because a worker that cannot beat stops sending before anyone
// may call it dead: its email sends are cut a fifth of Lease before the
// last lease it renewed ends (by its own clock, read before the beat was
// sent, so before the database's), and config keeps Lease shorter than
// DeadAfter, so a rescued run finds the lease over. And it is safe through
// a whole-database outage (every worker silent at once): a worker rescues
// only when its own beats have committed, each within Interval, for the
// whole DeadAfter before, evidence that the database was up while the
// other worker was silent. After an outage, every live worker beats again
// before anyone rescues.
type Heartbeat struct {
	Store *postgres.Store
	// Self is this worker; Self.ID is its River client id, the name in
	// its jobs' attempted_by.
	Self postgres.Worker
	// Interval is the time between beats (INTAKE_HEARTBEAT_INTERVAL).
	Interval time.Duration
	// Lease is an email attempt's delivery lease, renewed by every beat
	// (INTAKE_EMAIL_LEASE).
	Lease time.Duration
	// DeadAfter is how long a worker's beats may be missing before its
	// running jobs are rescued (INTAKE_WORKER_DEAD_AFTER).
	DeadAfter time.Duration
	Metrics   *Metrics
	Logger    *slog.Logger

	// Local times read before sending a beat: of the last beat that
	// committed, and of the first of the current unbroken run of prompt
	// committed beats (nil: the last beat failed). Kept as time.Time, with
	// their monotonic reading, so a step of the wall clock moves neither
	// the send's cut-off nor the rescue's evidence.
	lastBeat     atomic.Pointer[time.Time]
	healthySince atomic.Pointer[time.Time]

	// The email attempts in flight in this process, the only ones whose
	// leases a beat renews. An attempt number is taken once per
	// delivery, so no two runs track the same one.
	mu       sync.Mutex
	inFlight map[postgres.Attempt]struct{}
}

// Run beats every Interval until ctx ends.
func (h *Heartbeat) Run(ctx context.Context) {
	ticker := time.NewTicker(h.Interval)
	defer ticker.Stop()
	for {
		if err := h.Beat(ctx); err != nil && ctx.Err() == nil {
			h.Logger.Warn("heartbeat not recorded", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Beat records one heartbeat, renews this worker's leases and, once its
// beats have been healthy for DeadAfter, rescues dead workers' jobs.
func (h *Heartbeat) Beat(ctx context.Context) error {
	// The attempts are read after start: a beat that started after an
	// attempt was tracked renews its lease (see sendableUntil).
	start := time.Now()
	inFlight := h.attempts()
	since := h.healthySince.Load()
	rescue := time.Duration(0)
	if since != nil && start.Sub(*since) >= h.DeadAfter {
		rescue = h.DeadAfter
	}
	// A beat that cannot commit within Interval is a failed beat: the
	// next one starts on time, and a slow database is not "up".
	beatCtx, cancel := context.WithTimeout(ctx, h.Interval)
	defer cancel()
	_, rescued, err := h.Store.WorkerBeat(beatCtx, h.Self, postgres.BeatOpts{Lease: h.Lease, InFlight: inFlight, RescueDeadAfter: rescue})
	if err != nil {
		h.healthySince.Store(nil)
		return err
	}
	h.lastBeat.Store(&start)
	h.healthySince.CompareAndSwap(nil, &start)
	h.Metrics.Heartbeat(time.Now())
	for _, j := range rescued {
		h.Logger.Warn("rescued a running job from a dead worker", "job_id", j.ID, "kind", j.Kind, "state", j.State, "dead_worker", j.Worker, "new_job_id", j.NewID)
	}
	return nil
}

// track makes the beats renew attempt a's lease until the returned untrack
// is called, when the attempt's run ends: however it ended, a lease it left
// set then runs out on its own instead of being renewed while this worker
// lives.
func (h *Heartbeat) track(a postgres.Attempt) (untrack func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inFlight == nil {
		h.inFlight = make(map[postgres.Attempt]struct{})
	}
	h.inFlight[a] = struct{}{}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.inFlight, a)
	}
}

// attempts returns the attempts in flight now.
func (h *Heartbeat) attempts() []postgres.Attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	as := make([]postgres.Attempt, 0, len(h.inFlight))
	for a := range h.inFlight {
		as = append(as, a)
	}
	return as
}

// sendableUntil is when a send under a lease taken at taken (read before
// DeliveryAttemptStart) and confirmed at confirmed (read after it
// returned) must end: a fifth of Lease, time for the cut send to close
// its connection, before the lease the last beat renewed ends. Only a beat
// sent after confirmed counts: an earlier one may not have seen the
// attempt's row, nor the attempt tracked (track is called before confirmed
// is read).
func (h *Heartbeat) sendableUntil(taken, confirmed time.Time) time.Time {
	base := taken
	if last := h.lastBeat.Load(); last != nil && last.After(confirmed) {
		base = *last
	}
	return base.Add(h.Lease - h.Lease/5)
}

// guard returns ctx, cancelled once sendableUntil(taken, confirmed) has
// passed without a beat moving it on.
func (h *Heartbeat) guard(ctx context.Context, taken, confirmed time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			wait := time.NewTimer(time.Until(h.sendableUntil(taken, confirmed)))
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
			if !time.Now().Before(h.sendableUntil(taken, confirmed)) {
				cancel()
				return
			}
		}
	}()
	return ctx, cancel
}

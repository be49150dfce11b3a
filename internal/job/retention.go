package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/postgres"
)

// RetentionInterval is how often the leader deletes what has outlived its
// retention. Each run deletes everything due, so the interval only bounds
// how long past its time a row may stay.
const RetentionInterval = time.Hour

// RetentionBatch is how many rows one delete statement takes. A batch is one
// short transaction: its row locks last a statement of about a thousand
// index-ordered deletes, which a concurrent submit never waits for (the
// rows are picked SKIP LOCKED, and a submit touches none of them).
const RetentionBatch = 1000

// River's cleaner deletes River's own finished jobs after these periods.
const (
	// CompletedJobRetention: a completed job's outcome is in the ledger and
	// the analytics sink; a day of them shows recent throughput in
	// intakectl status.
	CompletedJobRetention = 24 * time.Hour
	// CancelledJobRetention and DiscardedJobRetention: a discarded or
	// cancelled analytics job holds the only copy of its record once outbox
	// retention has deleted its event, and intakectl analytics retry
	// --discarded replays it from there; 30 days leaves a sink outage
	// (retried for INTAKE_RETRY_FOR) weeks to be noticed and replayed. The
	// reconciler and the abandoned-delivery check treat a deleted
	// confirmation job as a finalized one, so they do not need them.
	CancelledJobRetention = 30 * 24 * time.Hour
	DiscardedJobRetention = 30 * 24 * time.Hour
)

// OutboxRetentionArgs asks for one run of outbox retention.
type OutboxRetentionArgs struct{}

func (OutboxRetentionArgs) Kind() string { return "outbox_retention" }

func (OutboxRetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// OutboxRetentionWorker deletes dispatched outbox events older than
// Retention. An application outlives its event: invariant 1 is enforced
// when the two are inserted (see the README), and the event's work is done
// once it is dispatched (its jobs carry what they need).
type OutboxRetentionWorker struct {
	river.WorkerDefaults[OutboxRetentionArgs]
	Store     *postgres.Store
	Logger    *slog.Logger
	Now       func() time.Time
	Retention time.Duration
}

func (w *OutboxRetentionWorker) Work(ctx context.Context, _ *river.Job[OutboxRetentionArgs]) error {
	cutoff := w.Now().Add(-w.Retention)
	n, err := w.Store.DeleteDispatchedEvents(ctx, cutoff, RetentionBatch)
	if n > 0 {
		w.Logger.InfoContext(ctx, "outbox retention", "deleted", n, "dispatched_before", cutoff)
	}
	return err
}

// IdempotencyExpiryArgs asks for one run of idempotency-key expiry.
type IdempotencyExpiryArgs struct{}

func (IdempotencyExpiryArgs) Kind() string { return "idempotency_key_expiry" }

func (IdempotencyExpiryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// IdempotencyExpiryWorker deletes the idempotency keys (and their stored
// responses) whose lifetime is over.
type IdempotencyExpiryWorker struct {
	river.WorkerDefaults[IdempotencyExpiryArgs]
	Store  *postgres.Store
	Logger *slog.Logger
	Now    func() time.Time
}

func (w *IdempotencyExpiryWorker) Work(ctx context.Context, _ *river.Job[IdempotencyExpiryArgs]) error {
	n, err := w.Store.DeleteExpiredIdempotencyKeys(ctx, w.Now(), RetentionBatch)
	if n > 0 {
		w.Logger.InfoContext(ctx, "idempotency keys expired", "deleted", n)
	}
	return err
}

package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres"
)

// reconcileLimit bounds the deliveries one run re-enqueues in its single
// transaction; more wait for the next run.
const reconcileLimit = 1000

// ReconcilerArgs asks for one run of the reconciler.
type ReconcilerArgs struct{}

func (ReconcilerArgs) Kind() string { return "deliveries_reconcile" }

func (ReconcilerArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// ReconcilerWorker finds the confirmations that should have gone out but
// that no job will send: a delivery queued, retrying or sending with its
// lease over, left alone for After, whose confirmation job is gone (River
// discards a job rescued after its last attempt without running it; an
// operator may cancel or delete one). It enqueues one new job for each,
// once per delivery ever, audited as the system; a delivery whose second
// job is lost as well is ended by the abandoned-delivery check, so nothing
// loops. It also counts the events undispatched for longer than After and
// warns: the relay owns them, and a backlog there means no relay runs.
type ReconcilerWorker struct {
	river.WorkerDefaults[ReconcilerArgs]
	Store       *postgres.Store
	Logger      *slog.Logger
	Now         func() time.Time
	After       time.Duration
	MaxAttempts int
}

func (w *ReconcilerWorker) Work(ctx context.Context, _ *river.Job[ReconcilerArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	ids, err := w.Store.ReconcileDeliveries(ctx, access.Caller{Actor: access.ActorSystem}, w.After, reconcileLimit,
		func(ctx context.Context, tx pgx.Tx, appIDs []string) error {
			params := make([]river.InsertManyParams, len(appIDs))
			for i, id := range appIDs {
				params[i] = ConfirmationEmail(id, w.MaxAttempts)
			}
			_, err := client.InsertManyTx(ctx, tx, params)
			return err
		})
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		w.Logger.WarnContext(ctx, "confirmations without a job re-enqueued once", "deliveries", len(ids), "application_ids", ids)
	}
	stale, err := w.Store.StaleEvents(ctx, w.Now().Add(-w.After))
	if err != nil {
		return err
	}
	if stale > 0 {
		w.Logger.WarnContext(ctx, "outbox events undispatched past the reconciler's threshold (is a relay running?)", "events", stale, "older_than", w.After)
	}
	return nil
}

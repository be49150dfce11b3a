package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// DeleteDispatchedEvents deletes the outbox events dispatched before cutoff,
// batch rows per statement, each statement its own transaction, until a
// batch comes back short; it returns how many it deleted. Rows another
// transaction holds are skipped, so a run never waits for a submit or the
// relay, and a submit never waits for more than one batch's statement.
// Undispatched and quarantined events are kept whatever their age.
func (s *Store) DeleteDispatchedEvents(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	return inBatches(ctx, batch, func(ctx context.Context) (int64, error) {
		return s.q.OutboxDeleteDispatched(ctx, dbsqlc.OutboxDeleteDispatchedParams{Cutoff: cutoff, MaxRows: int32(batch)})
	})
}

// DeleteExpiredIdempotencyKeys deletes, in batches as DeleteDispatchedEvents
// does, the idempotency keys that expired before cutoff (the caller's now).
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	return inBatches(ctx, batch, func(ctx context.Context) (int64, error) {
		return s.q.IdempotencyKeysDeleteExpired(ctx, dbsqlc.IdempotencyKeysDeleteExpiredParams{Cutoff: cutoff, MaxRows: int32(batch)})
	})
}

// inBatches runs deleteBatch until it deletes fewer than batch rows.
func inBatches(ctx context.Context, batch int, deleteBatch func(context.Context) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := deleteBatch(ctx)
		total += n
		if err != nil {
			return total, classify(err)
		}
		if n < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// ReconcileDeliveries finds up to limit deliveries that should be on their
// way but that no confirmation job can move any more, and were never
// reconciled: left alone for quietFor, still queued, retrying or sending
// with an expired lease, with no live job. In ONE transaction it marks them
// reconciled, audits each (deliveries.reconcile, as c), and has enqueue
// insert their new email jobs, so a delivery is re-enqueued at most once
// ever and never without its record. It returns their application ids.
func (s *Store) ReconcileDeliveries(ctx context.Context, c access.Caller, quietFor time.Duration, limit int, enqueue func(ctx context.Context, tx pgx.Tx, applicationIDs []string) error) ([]string, error) {
	var reconciled []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, db.DeliveriesReconcile, interval(quietFor), limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err = auditEach(ctx, s.q.WithTx(tx), c, "deliveries.reconcile", "application", ids, err); err != nil || len(ids) == 0 {
			return err
		}
		reconciled = make([]string, len(ids))
		for i, id := range ids {
			reconciled[i] = id.String()
		}
		return enqueue(ctx, tx, reconciled)
	})
	if err != nil {
		return nil, classify(err)
	}
	return reconciled, nil
}

// StaleEvents counts the events neither dispatched nor quarantined that
// were created before cutoff: the relay owns them, the reconciler only
// reports them.
func (s *Store) StaleEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	n, err := s.q.OutboxStaleCount(ctx, cutoff)
	return n, classify(err)
}

// ReconcilerFinds is what the reconciler found, for intakectl status.
type ReconcilerFinds struct {
	// Reconciled counts the deliveries it ever re-enqueued, Recent those
	// since the caller's cutoff.
	Reconciled int64 `json:"reconciled"`
	Recent     int64 `json:"reconciled_recent"`
	// StaleEvents counts the events undispatched past the caller's cutoff.
	StaleEvents int64 `json:"stale_events"`
}

// Reconciler reports the deliveries reconciled (in all and since
// recentSince) and the events undispatched since before staleBefore.
func (s *Store) Reconciler(ctx context.Context, recentSince, staleBefore time.Time) (ReconcilerFinds, error) {
	counts, err := s.q.DeliveriesReconciledCount(ctx, recentSince)
	if err != nil {
		return ReconcilerFinds{}, classify(err)
	}
	stale, err := s.StaleEvents(ctx, staleBefore)
	if err != nil {
		return ReconcilerFinds{}, err
	}
	return ReconcilerFinds{Reconciled: counts.Reconciled, Recent: counts.Recent, StaleEvents: stale}, nil
}

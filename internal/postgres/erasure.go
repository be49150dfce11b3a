package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// EraseApplication erases the personal data of the application with id on
// behalf of c, in one transaction with its audit row (applications.erase,
// target the id, the reason as its detail). ErrNotFound for an unknown id;
// erasing an erased application again changes nothing more and succeeds.
func (s *Store) EraseApplication(ctx context.Context, c access.Caller, id, reason string) error {
	appID, err := uuid.Parse(id)
	if err != nil {
		return application.ErrNotFound
	}
	return s.auditedTx(ctx, c, "applications.erase", "application", func(tx pgx.Tx, q *dbsqlc.Queries) (string, string, error) {
		return id, reason, erase(ctx, tx, q, appID)
	})
}

// EraseByEmail erases every application whose normalised email is
// normalizedEmail, on every posting, in ONE transaction, on behalf of c,
// and returns how many it erased. Each application gets its own
// applications.erase row; the request itself is audited as erasures.create
// with the count as its detail, never the address.
func (s *Store) EraseByEmail(ctx context.Context, c access.Caller, normalizedEmail, reason string) (int, error) {
	var n int
	err := s.auditedTx(ctx, c, "erasures.create", "erasure", func(tx pgx.Tx, q *dbsqlc.Queries) (string, string, error) {
		ids, err := q.ApplicationIDsByEmail(ctx, normalizedEmail)
		if err != nil {
			return "", "", err
		}
		if err := eraseEach(ctx, tx, q, c, ids, reason); err != nil {
			return "", "", err
		}
		n = len(ids)
		detail := "erased " + strconv.Itoa(n)
		if reason != "" {
			detail += "; " + reason
		}
		return "", detail, nil
	})
	return n, err
}

// eraseEach erases each of ids, each with its applications.erase audit
// row (the reason as its detail), in tx.
func eraseEach(ctx context.Context, tx pgx.Tx, q *dbsqlc.Queries, c access.Caller, ids []uuid.UUID, reason string) error {
	for _, id := range ids {
		if err := erase(ctx, tx, q, id); err != nil {
			return err
		}
		if err := insertAuditDetail(ctx, q, c, "applications.erase", "application", id.String(), reason, access.OutcomeOK); err != nil {
			return err
		}
	}
	return nil
}

// erase cancels the application's unsent confirmation (ledger and River
// job), overwrites its personal fields, deletes its CV and the stored
// responses of the submits that made it. The delivery's row lock orders it against an
// attempt's start: an attempt that started first may still send and record
// it; none can start once this commits. The delivery row is taken before
// the application's, and River's job after it, the order in which the
// relay and the worker take them, so none waits on another in a cycle.
func erase(ctx context.Context, tx pgx.Tx, q *dbsqlc.Queries, id uuid.UUID) error {
	if err := q.DeliveryCancelErased(ctx, id); err != nil {
		return err
	}
	if _, err := q.ApplicationErase(ctx, id); err != nil {
		return err
	}
	if err := q.ApplicationFileDelete(ctx, id); err != nil {
		return err
	}
	if err := q.IdempotencyKeysDeleteForApplication(ctx, id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, db.RiverConfirmationCancel, id.String())
	return err
}

// EraseReceivedBefore erases, on behalf of c, the applications received
// before cutoff and not erased yet, batch of them per transaction (each
// with its applications.erase audit row, the reason as its detail), until
// a batch comes back short; it returns how many it erased. Each one goes
// through erase, as an operator's erasure does. Rows another transaction
// holds are skipped and left for the next run, so a run never waits for a
// submit, a send or an operator's erasure.
func (s *Store) EraseReceivedBefore(ctx context.Context, c access.Caller, cutoff time.Time, batch int, reason string) (int, error) {
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			q := s.q.WithTx(tx)
			ids, err := q.ApplicationsRetentionBatch(ctx, dbsqlc.ApplicationsRetentionBatchParams{Cutoff: cutoff, MaxRows: int32(batch)})
			if err != nil {
				return err
			}
			n = len(ids)
			return eraseEach(ctx, tx, q, c, ids, reason)
		})
		if err != nil {
			return total, classify(err)
		}
		total += n
		if n < batch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

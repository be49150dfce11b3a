package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// audited runs fn and the audit row of its action in ONE transaction, so
// the change commits only with its record. When the caller acts with a
// token, the transaction first share-locks the token's row: a revocation
// that committed before is access.ErrTokenInvalid here (nothing changes),
// and one that comes during waits for this commit. A failure of fn other
// than an outage or an invalid token is recorded (outcome error) in a
// transaction of its own; fn returns the target id in both cases.
func (s *Store) audited(ctx context.Context, c access.Caller, action, targetType string, fn func(q *dbsqlc.Queries) (string, error)) error {
	return s.auditedTx(ctx, c, action, targetType, func(_ pgx.Tx, q *dbsqlc.Queries) (string, string, error) {
		target, err := fn(q)
		return target, "", err
	})
}

// auditedTx is audited for a change that also needs the transaction itself
// (River's job table) and records a detail on its audit row.
func (s *Store) auditedTx(ctx context.Context, c access.Caller, action, targetType string, fn func(tx pgx.Tx, q *dbsqlc.Queries) (target, detail string, err error)) error {
	var target, detail string
	err := classify(s.beginFunc(ctx, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := lockCaller(ctx, q, c); err != nil {
			return err
		}
		var err error
		if target, detail, err = fn(tx, q); err != nil {
			return err
		}
		return insertAuditDetail(ctx, q, c, action, targetType, target, detail, access.OutcomeOK)
	}))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, access.ErrTokenInvalid):
		return errors.Join(err, s.Audit(ctx, access.Entry{Actor: c.Actor, Action: action, TargetType: targetType,
			TargetID: target, Outcome: access.OutcomeDenied, RequestID: c.RequestID}))
	case errors.Is(err, application.ErrUnavailable):
		return err
	default:
		return errors.Join(err, s.Audit(ctx, access.Entry{Actor: c.Actor, Action: action, TargetType: targetType,
			TargetID: target, Outcome: access.OutcomeError, RequestID: c.RequestID}))
	}
}

// lockCaller holds the caller's token valid until the transaction ends.
func lockCaller(ctx context.Context, q *dbsqlc.Queries, c access.Caller) error {
	if c.TokenID == "" {
		return nil
	}
	id, err := uuid.Parse(c.TokenID)
	if err != nil {
		return access.ErrTokenInvalid
	}
	if _, err := q.TokenLockValid(ctx, id); errors.Is(err, pgx.ErrNoRows) {
		return access.ErrTokenInvalid
	} else if err != nil {
		return err
	}
	return nil
}

func insertAudit(ctx context.Context, q *dbsqlc.Queries, c access.Caller, action, targetType, targetID string, outcome access.Outcome) error {
	return insertAuditDetail(ctx, q, c, action, targetType, targetID, "", outcome)
}

func insertAuditDetail(ctx context.Context, q *dbsqlc.Queries, c access.Caller, action, targetType, targetID, detail string, outcome access.Outcome) error {
	return q.AuditInsert(ctx, dbsqlc.AuditInsertParams{
		Actor: c.Actor, Action: action, TargetType: targetType, TargetID: targetID,
		Outcome: string(outcome), RequestID: c.RequestID, Detail: detail,
	})
}

// Audit appends e to the audit log on its own (a denied call, which
// changes nothing).
func (s *Store) Audit(ctx context.Context, e access.Entry) error {
	return classify(s.q.AuditInsert(ctx, dbsqlc.AuditInsertParams{
		Actor: e.Actor, Action: e.Action, TargetType: e.TargetType, TargetID: e.TargetID,
		Outcome: string(e.Outcome), RequestID: e.RequestID, Detail: e.Detail,
	}))
}

// AuditTx appends an ok entry for c's action in the caller's transaction
// tx, for changes made outside the store (River's job tables).
func (s *Store) AuditTx(ctx context.Context, tx pgx.Tx, c access.Caller, action, targetType, targetID string) error {
	return classify(insertAudit(ctx, s.q.WithTx(tx), c, action, targetType, targetID, access.OutcomeOK))
}

// AuditEntries lists the audit log newest first, entries older than
// beforeID (zero: from the newest), at most limit of them; the list itself
// is audited.
func (s *Store) AuditEntries(ctx context.Context, c access.Caller, f access.AuditFilter, beforeID int64, limit int) ([]access.Entry, error) {
	var out []access.Entry
	err := s.audited(ctx, c, "audit.list", "audit", func(q *dbsqlc.Queries) (string, error) {
		rows, err := q.AuditList(ctx, dbsqlc.AuditListParams{
			BeforeID: beforeID, Actor: f.Actor, Action: f.Action, Target: f.Target,
			Since: f.Since, Until: f.Until, MaxRows: int32(limit),
		})
		out = make([]access.Entry, len(rows))
		for i, r := range rows {
			out[i] = access.Entry{ID: r.ID, At: r.At, Actor: r.Actor, Action: r.Action, TargetType: r.TargetType,
				TargetID: r.TargetID, Outcome: access.Outcome(r.Outcome), RequestID: r.RequestID, Detail: r.Detail}
		}
		return "", err
	})
	return out, err
}

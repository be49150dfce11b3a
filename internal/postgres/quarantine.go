package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/internal/access"
)

// QuarantinedEvent is an outbox event the relay set aside because it could
// not become jobs, or (in OutboxEvents with waiting) one still waiting for
// the relay, with no quarantine time or error.
type QuarantinedEvent struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	AggregateID   string     `json:"aggregate_id"`
	CreatedAt     time.Time  `json:"created_at"`
	QuarantinedAt *time.Time `json:"quarantined_at"`
	Error         string     `json:"error"`
}

// QuarantineSummary counts the quarantined events.
type QuarantineSummary struct {
	Events int64
	// OldestSeconds is how long ago the earliest of them was quarantined.
	OldestSeconds float64
}

// Quarantine counts the quarantined events (for intakectl status and the
// worker's /readyz).
func (s *Store) Quarantine(ctx context.Context) (QuarantineSummary, error) {
	r, err := s.q.OutboxQuarantineCount(ctx)
	if err != nil {
		return QuarantineSummary{}, classify(err)
	}
	return QuarantineSummary{Events: r.Quarantined, OldestSeconds: r.OldestSeconds}, nil
}

// OutboxEvents lists the quarantined events, earliest quarantine first, then
// up to waiting of the oldest events waiting for the relay.
func (s *Store) OutboxEvents(ctx context.Context, waiting int) ([]QuarantinedEvent, error) {
	rows, err := s.q.OutboxQuarantined(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]QuarantinedEvent, 0, len(rows))
	for _, r := range rows {
		out = append(out, QuarantinedEvent{
			ID:            r.ID.String(),
			Kind:          r.Kind,
			AggregateID:   r.AggregateID.String(),
			CreatedAt:     r.CreatedAt,
			QuarantinedAt: r.QuarantinedAt,
			Error:         r.QuarantineError.String,
		})
	}
	if waiting <= 0 {
		return out, nil
	}
	waits, err := s.q.OutboxWaiting(ctx, int32(waiting))
	if err != nil {
		return nil, classify(err)
	}
	for _, r := range waits {
		out = append(out, QuarantinedEvent{ID: r.ID.String(), Kind: r.Kind, AggregateID: r.AggregateID.String(), CreatedAt: r.CreatedAt})
	}
	return out, nil
}

// ReleaseQuarantined clears the quarantine of the given events (of every
// quarantined event when ids is empty), so the next relay round claims them
// again, and returns the events it released. An id that names no event is
// an error and releases nothing; an event that is not quarantined (already
// released, or dispatched) is left alone, so a retry can be repeated. Each
// release is audited (outbox.retry) in the same transaction, on behalf of c.
func (s *Store) ReleaseQuarantined(ctx context.Context, c access.Caller, ids []string) ([]string, error) {
	uuids := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("%q is not an event id", id)
		}
		uuids[i] = u
	}
	var released []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if len(uuids) > 0 {
			known, err := q.OutboxEventsKnown(ctx, uuids)
			if err != nil {
				return err
			}
			found := map[uuid.UUID]bool{}
			for _, id := range known {
				found[id] = true
			}
			var missing []string
			for i, u := range uuids {
				if !found[u] {
					missing = append(missing, ids[i])
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("no outbox event with id %s", strings.Join(missing, ", "))
			}
		}
		rows, err := q.OutboxRelease(ctx, uuids)
		if err = auditEach(ctx, q, c, "outbox.retry", "event", rows, err); err != nil {
			return err
		}
		released = make([]string, len(rows))
		for i, id := range rows {
			released[i] = id.String()
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	return released, nil
}

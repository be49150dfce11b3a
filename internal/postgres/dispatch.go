package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/internal/application"
)

// EnqueueFunc inserts the River jobs for events inside tx.
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, events []application.Event) error

// DispatchEvents is one round of the outbox relay. In ONE transaction it
// claims up to limit undispatched events (oldest first, FOR UPDATE SKIP
// LOCKED), has enqueue insert their River jobs, opens the delivery ledger
// rows, and marks the events dispatched. Either the jobs exist and the
// events are dispatched, or neither: a crash at any point leaves the events
// for the next round. It returns how many events it dispatched.
func (s *Store) DispatchEvents(ctx context.Context, limit int, enqueue EnqueueFunc) (int, error) {
	var n int
	err := classify(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		rows, err := q.OutboxClaim(ctx, int32(limit))
		if err != nil || len(rows) == 0 {
			return err
		}

		events := make([]application.Event, len(rows))
		ids := make([]uuid.UUID, len(rows))
		var submitted []uuid.UUID
		for i, r := range rows {
			var p submittedPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				return fmt.Errorf("outbox event %s: payload: %w", r.ID, err)
			}
			events[i] = application.Event{
				ID:            r.ID.String(),
				Kind:          r.Kind,
				ApplicationID: r.AggregateID.String(),
				PostingSlug:   p.PostingSlug,
				OccurredAt:    r.CreatedAt,
			}
			ids[i] = r.ID
			if r.Kind == application.EventSubmitted {
				submitted = append(submitted, r.AggregateID)
			}
		}

		if err := enqueue(ctx, tx, events); err != nil {
			return fmt.Errorf("enqueue jobs: %w", err)
		}
		if err := q.DeliveryQueue(ctx, submitted); err != nil {
			return err
		}
		if err := q.OutboxMarkDispatched(ctx, ids); err != nil {
			return err
		}
		n = len(rows)
		return nil
	}))
	return n, err
}

package postgres

import (
	"context"

	"github.com/google/uuid"

	"github.com/intake/intake/internal/application"
)

// ApplicationStatus returns what the holder of an application's status token
// may see; the caller checks the token (see statustoken). An unknown or
// malformed id gives ErrNotFound, an erased one ErrErased.
func (s *Store) ApplicationStatus(ctx context.Context, id string) (application.Status, error) {
	appID, err := uuid.Parse(id)
	if err != nil {
		return application.Status{}, application.ErrNotFound
	}
	row, err := s.q.ApplicationStatusGet(ctx, appID)
	if err != nil {
		return application.Status{}, classify(err)
	}
	if row.ErasedAt != nil {
		return application.Status{}, application.ErrErased
	}
	return application.Status{
		ID:         row.ID.String(),
		ReceivedAt: row.ReceivedAt,
		Email: application.EmailStatus{
			State:         application.EmailState(row.DeliveryState),
			Attempts:      int(row.DeliveryAttempts),
			LastAttemptAt: row.LastAttemptAt,
		},
	}, nil
}

package postgres

import (
	"context"

	"github.com/google/uuid"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// RecordAnalyticsEvent stores ev in the analytics table unless it is there
// already (the event id is the key). It reports whether it was new.
func (s *Store) RecordAnalyticsEvent(ctx context.Context, ev application.Event) (bool, error) {
	eventID, err := uuid.Parse(ev.ID)
	if err != nil {
		return false, err
	}
	appID, err := uuid.Parse(ev.ApplicationID)
	if err != nil {
		return false, err
	}
	n, err := s.q.AnalyticsEventRecord(ctx, dbsqlc.AnalyticsEventRecordParams{
		EventID:       eventID,
		Kind:          ev.Kind,
		ApplicationID: appID,
		PostingSlug:   ev.PostingSlug,
		OccurredAt:    ev.OccurredAt,
	})
	return n == 1, classify(err)
}

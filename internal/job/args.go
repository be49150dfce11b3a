package job

import (
	"time"

	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/application"
)

// Queues. Analytics has its own, with its own concurrency, so a sink that is
// down for a day fills its queue and never delays email.
const (
	QueueEmail       = "email"
	QueueAnalytics   = "analytics"
	QueueMaintenance = "maintenance"
)

// ConfirmationEmailArgs asks for the confirmation email of one application.
type ConfirmationEmailArgs struct {
	ApplicationID string `json:"application_id"`
}

func (ConfirmationEmailArgs) Kind() string { return "confirmation_email" }

func (ConfirmationEmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueEmail}
}

// AnalyticsEventArgs asks for one event's analytics record. It carries the
// whole (non-personal) record so the job does not depend on the outbox row
// outliving its retries.
type AnalyticsEventArgs struct {
	EventID       string    `json:"event_id"`
	EventKind     string    `json:"event_kind"`
	ApplicationID string    `json:"application_id"`
	PostingSlug   string    `json:"posting_slug"`
	OccurredAt    time.Time `json:"occurred_at"`
}

func (AnalyticsEventArgs) Kind() string { return "analytics_event" }

func (AnalyticsEventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAnalytics}
}

func (a AnalyticsEventArgs) event() application.Event {
	return application.Event{
		ID:            a.EventID,
		Kind:          a.EventKind,
		ApplicationID: a.ApplicationID,
		PostingSlug:   a.PostingSlug,
		OccurredAt:    a.OccurredAt,
	}
}

// ConfirmationEmail is the insert of one application's confirmation email
// job, for the relay and for retries of failed deliveries alike.
func ConfirmationEmail(applicationID string, maxAttempts int) river.InsertManyParams {
	return river.InsertManyParams{
		Args:       ConfirmationEmailArgs{ApplicationID: applicationID},
		InsertOpts: &river.InsertOpts{Queue: QueueEmail, MaxAttempts: maxAttempts},
	}
}

// ForEvent returns the jobs an outbox event fans out to when its analytics
// record is a job (the http sink, whose endpoint may be offline for a day:
// the job retries on its own queue): for application.submitted the
// confirmation email and the analytics job, for another kind the analytics
// job. maxAttempts comes from the retry schedule.
func ForEvent(ev application.Event, maxAttempts int) []river.InsertManyParams {
	return append(ForEventWithoutAnalytics(ev, maxAttempts), river.InsertManyParams{
		Args: AnalyticsEventArgs{
			EventID:       ev.ID,
			EventKind:     ev.Kind,
			ApplicationID: ev.ApplicationID,
			PostingSlug:   ev.PostingSlug,
			OccurredAt:    ev.OccurredAt,
		},
		InsertOpts: &river.InsertOpts{Queue: QueueAnalytics, MaxAttempts: maxAttempts},
	})
}

// ForEventWithoutAnalytics returns the jobs of an event whose analytics
// record the relay writes itself in its round (the Postgres sink, see
// outbox.Relay.RecordAnalytics): the confirmation email for
// application.submitted, and none for another kind.
func ForEventWithoutAnalytics(ev application.Event, maxAttempts int) []river.InsertManyParams {
	if ev.Kind != application.EventSubmitted {
		return nil
	}
	return []river.InsertManyParams{ConfirmationEmail(ev.ApplicationID, maxAttempts)}
}

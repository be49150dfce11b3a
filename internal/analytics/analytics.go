// Package analytics records one analytics record per outbox event, in one
// of two sinks chosen by configuration: a Postgres table (the default) or an
// HTTP endpoint. Both deduplicate on the event id, so a job that runs twice
// records once. Records carry ids and times only.
package analytics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// Sink records events.
type Sink interface {
	Record(ctx context.Context, ev application.Event) error
}

// ErrPermanent marks a failure that retrying cannot fix (the HTTP endpoint
// refused the record with a 4xx other than 408 and 429).
var ErrPermanent = errors.New("analytics sink refused the event")

// PostgresSink records into the analytics_events table.
type PostgresSink struct{ Store *postgres.Store }

// Record inserts ev unless its id is there already.
func (s PostgresSink) Record(ctx context.Context, ev application.Event) error {
	_, err := s.Store.RecordAnalyticsEvent(ctx, ev)
	return err
}

// Record is the JSON body the HTTP sink posts.
type Record struct {
	EventID       string    `json:"event_id"`
	Kind          string    `json:"kind"`
	ApplicationID string    `json:"application_id"`
	PostingSlug   string    `json:"posting_slug"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// HTTPSink posts each event as JSON to URL, with the event id in the
// Idempotency-Key header so the endpoint can deduplicate.
type HTTPSink struct {
	URL    string
	Client *http.Client
}

// Record posts ev. 2xx is done; 408, 429, 5xx and network errors are
// temporary; any other status is permanent (ErrPermanent).
func (s HTTPSink) Record(ctx context.Context, ev application.Event) error {
	body, err := json.Marshal(Record{
		EventID:       ev.ID,
		Kind:          ev.Kind,
		ApplicationID: ev.ApplicationID,
		PostingSlug:   ev.PostingSlug,
		OccurredAt:    ev.OccurredAt.UTC(),
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", ev.ID)
	resp, err := s.Client.Do(req)
	if err != nil {
		return fmt.Errorf("analytics endpoint unreachable: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused

	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode >= 500:
		return fmt.Errorf("analytics endpoint answered %d", resp.StatusCode)
	default:
		return fmt.Errorf("%w: status %d", ErrPermanent, resp.StatusCode)
	}
}

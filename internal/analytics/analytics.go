// Package analytics records one analytics record per outbox event, in one
// of two sinks chosen by configuration: a Postgres table (the default) or an
// HTTP endpoint. Both deduplicate on the event id, so a job that runs twice
// records once. Records carry ids and times only. The HTTP sink's records
// come from analytics jobs; the Postgres sink's are written by the relay in
// the round that dispatches their events
// (postgres.Store.DispatchEventsAndRecord), and PostgresSink records only
// the analytics jobs left from an older worker or from a time the sink was
// http.
package analytics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// Sink records events.
type Sink interface {
	Record(ctx context.Context, ev application.Event) error
}

// ErrPermanent marks a failure that retrying cannot fix: the HTTP endpoint
// refused the record itself (400, 413, 415, 422).
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

// HTTPSink posts each event as JSON to its URL, with the event id in the
// Idempotency-Key header so the endpoint can deduplicate. Build it with
// NewHTTPSink.
type HTTPSink struct {
	url    string
	client *http.Client
}

// NewHTTPSink returns a sink posting to url, each request bounded by
// timeout. It never follows a redirect: Go's client would repeat a POST
// answered 301, 302 or 303 as a GET without the body and report the
// target's 2xx, counting a record nobody received.
func NewHTTPSink(url string, timeout time.Duration) HTTPSink {
	return HTTPSink{url: url, client: &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Record posts ev; see classify for what each status means.
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", ev.ID)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("analytics endpoint unreachable: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return answerError(resp.StatusCode)
}

// answered begins every error about a status, so that Misconfigured can
// read the status back from a job's stored error.
const answered = "analytics endpoint answered "

// answer is what an endpoint's status means for the record.
type answer int

const (
	recorded      answer = iota
	refused              // the record itself is bad: retrying cannot help
	unavailable          // the endpoint is busy or down: retry
	misconfigured        // wrong URL, credentials or proxy: retry while an operator fixes it
)

// classify is the sink's rule for statuses (the README has it as a table).
// 409 is what a deduplicating endpoint answers while another request with
// the same Idempotency-Key is in flight; that one may still fail, so 409 is
// retried, and the retry gets the stored answer. A 3xx is misconfiguration:
// the sink never follows redirects, and an endpoint that moved needs a new
// INTAKE_ANALYTICS_URL. Any 4xx not named here is taken as
// misconfiguration too, because a retry loses nothing and a cancel loses
// the record.
func classify(status int) answer {
	switch {
	case status >= 200 && status < 300:
		return recorded
	case status == http.StatusBadRequest,
		status == http.StatusRequestEntityTooLarge,
		status == http.StatusUnsupportedMediaType,
		status == http.StatusUnprocessableEntity:
		return refused
	case status == http.StatusRequestTimeout,
		status == http.StatusConflict,
		status == http.StatusTooEarly,
		status == http.StatusTooManyRequests,
		status >= 500:
		return unavailable
	case status >= 300 && status < 500:
		return misconfigured
	default:
		return unavailable
	}
}

// answerError is Record's result for status. It names the status and never
// the response body, which may quote the record.
func answerError(status int) error {
	switch classify(status) {
	case recorded:
		return nil
	case refused:
		return fmt.Errorf("%w: %s%d", ErrPermanent, answered, status)
	case misconfigured:
		if status < 400 {
			return fmt.Errorf("%s%d, a redirect (never followed: set INTAKE_ANALYTICS_URL to where the endpoint is now)", answered, status)
		}
		return fmt.Errorf("%s%d (check INTAKE_ANALYTICS_URL, the endpoint's credentials and any proxy)", answered, status)
	default:
		return fmt.Errorf("%s%d", answered, status)
	}
}

// Misconfigured reports whether jobError, a failed analytics job's error as
// River stores it, says the endpoint answered with a status that only an
// operator can fix.
func Misconfigured(jobError string) bool {
	_, rest, found := strings.Cut(jobError, answered)
	if !found || len(rest) < 3 {
		return false
	}
	status, err := strconv.Atoi(rest[:3])
	return err == nil && classify(status) == misconfigured
}

package analytics_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// newEvent returns a submitted event with fresh ids. OccurredAt is not in
// UTC: the sinks must record the instant, the HTTP sink in UTC.
func newEvent(t *testing.T) application.Event {
	t.Helper()
	return application.Event{
		ID:            uuid.NewString(),
		Kind:          application.EventSubmitted,
		ApplicationID: uuid.NewString(),
		PostingSlug:   "backend-engineer",
		OccurredAt:    time.Date(2026, time.March, 14, 10, 26, 53, 123456000, time.FixedZone("CET", 3600)),
	}
}

// responseBody is what the test endpoints answer with. It quotes personal
// data, as a real endpoint's error page might: no error may repeat it.
const responseBody = `{"detail":"ada@example.com is not a valid record"}`

func newSink(url string) analytics.HTTPSink { return analytics.NewHTTPSink(url, 5*time.Second) }

// capturedRequest is what the test endpoint saw of one request.
type capturedRequest struct {
	Method, ContentType, IdempotencyKey string
	Body                                []byte
}

// endpoint is an httptest server answering every request with status and
// keeping what it received.
type endpoint struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []capturedRequest
}

func startEndpoint(t *testing.T, status int) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read", http.StatusInternalServerError)
			return
		}
		e.mu.Lock()
		e.reqs = append(e.reqs, capturedRequest{
			Method:         r.Method,
			ContentType:    r.Header.Get("Content-Type"),
			IdempotencyKey: r.Header.Get("Idempotency-Key"),
			Body:           body,
		})
		e.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, responseBody)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) sink() analytics.HTTPSink { return newSink(e.srv.URL) }

func (e *endpoint) requests() []capturedRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]capturedRequest(nil), e.reqs...)
}

func TestHTTPSinkPostsRecord(t *testing.T) {
	t.Parallel()

	for _, status := range []int{http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			e := startEndpoint(t, status)
			ev := newEvent(t)

			require.NoError(t, e.sink().Record(t.Context(), ev))

			reqs := e.requests()
			require.Len(t, reqs, 1)
			req := reqs[0]
			require.Equal(t, http.MethodPost, req.Method)
			require.Equal(t, "application/json", req.ContentType)
			require.Equal(t, ev.ID, req.IdempotencyKey)

			// Exactly these keys: a record has no field personal data
			// could travel in.
			var body map[string]any
			require.NoError(t, json.Unmarshal(req.Body, &body))
			require.Equal(t, map[string]any{
				"event_id":       ev.ID,
				"kind":           "application.submitted",
				"application_id": ev.ApplicationID,
				"posting_slug":   "backend-engineer",
				"occurred_at":    "2026-03-14T09:26:53.123456Z",
			}, body)
		})
	}
}

func TestHTTPSinkTemporaryStatus(t *testing.T) {
	t.Parallel()

	for _, status := range []int{
		http.StatusRequestTimeout,
		http.StatusConflict, // a deduplicating endpoint still working on the same key
		http.StatusTooEarly,
		http.StatusTooManyRequests,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			e := startEndpoint(t, status)

			err := e.sink().Record(t.Context(), newEvent(t))
			require.Error(t, err)
			require.False(t, errors.Is(err, analytics.ErrPermanent), "status %d must be retried: %v", status, err)
			require.Contains(t, err.Error(), strconv.Itoa(status))
			require.NotContains(t, err.Error(), "ada@example.com")
			require.Len(t, e.requests(), 1)
			require.False(t, analytics.Misconfigured(err.Error()), "an outage fixes itself: %v", err)
		})
	}
}

// A sink that answers 401, 403, 404, 405 or 407 is misconfigured (wrong
// URL, credentials or proxy), not refusing the record: the job must keep
// retrying until an operator fixes the configuration, or every event of
// the outage is lost.
func TestHTTPSinkMisconfiguredStatusIsRetried(t *testing.T) {
	t.Parallel()

	for _, status := range []int{
		http.StatusUnauthorized,
		http.StatusForbidden,
		http.StatusNotFound,
		http.StatusMethodNotAllowed,
		http.StatusProxyAuthRequired,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			e := startEndpoint(t, status)

			err := e.sink().Record(t.Context(), newEvent(t))
			require.Error(t, err)
			require.False(t, errors.Is(err, analytics.ErrPermanent), "status %d must be retried: %v", status, err)
			require.Contains(t, err.Error(), "analytics endpoint answered "+strconv.Itoa(status))
			require.NotContains(t, err.Error(), "ada@example.com")
			require.True(t, analytics.Misconfigured(err.Error()), "intakectl status must report %v", err)
		})
	}
}

// A redirect is not a record: Go's client would follow 301/302/303 with a
// bodiless GET (and 307/308 with the body) and see the target's 2xx. The
// sink must stop at the redirect and retry, never touching the target.
func TestHTTPSinkRedirectIsNotRecorded(t *testing.T) {
	t.Parallel()

	for _, status := range []int{
		http.StatusMovedPermanently,
		http.StatusFound,
		http.StatusSeeOther,
		http.StatusTemporaryRedirect,
		http.StatusPermanentRedirect,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			target := startEndpoint(t, http.StatusOK)
			mux := http.NewServeMux()
			mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.srv.URL+"/events", status)
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			err := newSink(srv.URL+"/events").Record(t.Context(), newEvent(t))

			require.Error(t, err, "a %d answer counted as recorded", status)
			require.False(t, errors.Is(err, analytics.ErrPermanent), "status %d must be retried: %v", status, err)
			require.Contains(t, err.Error(), "analytics endpoint answered "+strconv.Itoa(status))
			require.Empty(t, target.requests(), "the sink followed the redirect")
			require.True(t, analytics.Misconfigured(err.Error()), "intakectl status must report %v", err)
		})
	}
}

func TestHTTPSinkPermanentStatus(t *testing.T) {
	t.Parallel()

	for _, status := range []int{
		http.StatusBadRequest,
		http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType,
		http.StatusUnprocessableEntity,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			e := startEndpoint(t, status)

			err := e.sink().Record(t.Context(), newEvent(t))
			require.ErrorIs(t, err, analytics.ErrPermanent, "status %d", status)
			require.Contains(t, err.Error(), strconv.Itoa(status))
			require.NotContains(t, err.Error(), "ada@example.com")
		})
	}
}

// Misconfigured reads River's stored error text, which wraps the sink's.
func TestMisconfiguredReadsStoredErrors(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"analytics endpoint answered 401 (check INTAKE_ANALYTICS_URL, the endpoint's credentials and any proxy)": true,
		"analytics endpoint answered 308, a redirect (never followed)":                                           true,
		"analytics endpoint answered 410":                                                                        true,
		"analytics endpoint answered 503":                                                                        false,
		"analytics endpoint answered 429":                                                                        false,
		"JobCancelError: analytics sink refused the event: analytics endpoint answered 422":                      false,
		"analytics endpoint unreachable: dial tcp 127.0.0.1:1: connection refused":                               false,
		"analytics endpoint answered 4":                                                                          false,
		"":                                                                                                       false,
	} {
		require.Equal(t, want, analytics.Misconfigured(text), "%q", text)
	}
}

func TestHTTPSinkUnreachable(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the closed server answered")
	}))
	sink := newSink(srv.URL)
	srv.Close()

	err := sink.Record(t.Context(), newEvent(t))
	require.Error(t, err)
	require.False(t, errors.Is(err, analytics.ErrPermanent), "a network error must be retried: %v", err)
}

func TestHTTPSinkDeduplicatedByEndpoint(t *testing.T) {
	t.Parallel()
	endpoint := testkit.StartSink(t)
	sink := newSink(endpoint.URL)
	ev := newEvent(t)

	// A job that runs twice records twice; the key makes it one record.
	require.NoError(t, sink.Record(t.Context(), ev))
	require.NoError(t, sink.Record(t.Context(), ev))

	require.Equal(t, map[string]int{ev.ID: 2}, endpoint.Calls())
	records := endpoint.Records()
	require.Len(t, records, 1)
	var rec analytics.Record
	require.NoError(t, json.Unmarshal(records[ev.ID], &rec))
	require.Equal(t, ev.ID, rec.EventID)
	require.Equal(t, ev.ApplicationID, rec.ApplicationID)
	require.True(t, ev.OccurredAt.Equal(rec.OccurredAt))

	// While the endpoint is down, the sink reports a temporary failure.
	endpoint.SetDown(true)
	err := sink.Record(t.Context(), newEvent(t))
	require.Error(t, err)
	require.False(t, errors.Is(err, analytics.ErrPermanent))
	require.Len(t, endpoint.Records(), 1)
}

func TestPostgresSinkRecordsOnce(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.NewPool(t)
	sink := analytics.PostgresSink{Store: postgres.NewStore(pool)}

	count := func() int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM analytics_events`).Scan(&n))
		return n
	}

	first := newEvent(t)
	require.NoError(t, sink.Record(t.Context(), first))
	require.NoError(t, sink.Record(t.Context(), first))
	require.Equal(t, 1, count())

	var (
		kind, slug string
		appID      uuid.UUID
		occurredAt time.Time
	)
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT kind, application_id, posting_slug, occurred_at FROM analytics_events WHERE event_id = $1`,
		first.ID).Scan(&kind, &appID, &slug, &occurredAt))
	require.Equal(t, first.Kind, kind)
	require.Equal(t, first.ApplicationID, appID.String())
	require.Equal(t, first.PostingSlug, slug)
	require.True(t, first.OccurredAt.Equal(occurredAt), "occurred_at %s, want %s", occurredAt, first.OccurredAt)

	second := newEvent(t)
	second.ApplicationID = first.ApplicationID // a second event about the same application
	require.NoError(t, sink.Record(t.Context(), second))
	require.Equal(t, 2, count())
}

func TestPostgresSinkRejectsMalformedIDs(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.NewPool(t)
	sink := analytics.PostgresSink{Store: postgres.NewStore(pool)}

	ev := newEvent(t)
	ev.ID = "not-a-uuid"
	require.Error(t, sink.Record(t.Context(), ev))
}

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
		_, _ = io.WriteString(w, `{"detail":"ignored"}`)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) sink() analytics.HTTPSink {
	return analytics.HTTPSink{URL: e.srv.URL, Client: e.srv.Client()}
}

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
		http.StatusTooManyRequests,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			e := startEndpoint(t, status)

			err := e.sink().Record(t.Context(), newEvent(t))
			require.Error(t, err)
			require.False(t, errors.Is(err, analytics.ErrPermanent), "status %d must be retried: %v", status, err)
			require.Contains(t, err.Error(), strconv.Itoa(status))
			require.Len(t, e.requests(), 1)
		})
	}
}

func TestHTTPSinkPermanentStatus(t *testing.T) {
	t.Parallel()

	for _, status := range []int{
		http.StatusBadRequest,
		http.StatusUnauthorized,
		http.StatusNotFound,
		http.StatusUnprocessableEntity,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			e := startEndpoint(t, status)

			err := e.sink().Record(t.Context(), newEvent(t))
			require.ErrorIs(t, err, analytics.ErrPermanent, "status %d", status)
			require.Contains(t, err.Error(), strconv.Itoa(status))
		})
	}
}

func TestHTTPSinkUnreachable(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the closed server answered")
	}))
	sink := analytics.HTTPSink{URL: srv.URL, Client: srv.Client()}
	srv.Close()

	err := sink.Record(t.Context(), newEvent(t))
	require.Error(t, err)
	require.False(t, errors.Is(err, analytics.ErrPermanent), "a network error must be retried: %v", err)
}

func TestHTTPSinkDeduplicatedByEndpoint(t *testing.T) {
	t.Parallel()
	endpoint := testkit.StartSink(t)
	sink := analytics.HTTPSink{URL: endpoint.URL, Client: &http.Client{Timeout: 5 * time.Second}}
	ev := newEvent(t)
	t.Cleanup(sink.Client.CloseIdleConnections)

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

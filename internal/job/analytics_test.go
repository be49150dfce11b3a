package job_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/testkit"
)

// scriptedEndpoint answers each event (by its Idempotency-Key) with the
// status the test chose for it; a 3xx redirects to /target, which answers
// 200 and must never be reached.
type scriptedEndpoint struct {
	srv    *httptest.Server
	status map[string]int

	mu          sync.Mutex
	targetCalls int
}

func startScriptedEndpoint(t *testing.T, status map[string]int) *scriptedEndpoint {
	t.Helper()
	e := &scriptedEndpoint{status: status}
	mux := http.NewServeMux()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		code, ok := e.status[r.Header.Get("Idempotency-Key")]
		if !ok {
			t.Errorf("request for an unknown event %q", r.Header.Get("Idempotency-Key"))
			code = http.StatusInternalServerError
		}
		if code >= 300 && code < 400 {
			http.Redirect(w, r, "/target", code)
			return
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"detail":"ada@example.com is not a valid record"}`))
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		e.targetCalls++
		e.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// The analytics worker, run by a real River client over Postgres, ends each
// job by the sink's rule: a redirect and a misconfigured endpoint are
// retried like an outage, only a refused record is cancelled.
func TestAnalyticsJobOutcomeByStatus(t *testing.T) {
	t.Parallel()
	want := map[int]rivertype.JobState{
		http.StatusOK:                  rivertype.JobStateCompleted,
		http.StatusMovedPermanently:    rivertype.JobStateRetryable,
		http.StatusFound:               rivertype.JobStateRetryable,
		http.StatusSeeOther:            rivertype.JobStateRetryable,
		http.StatusTemporaryRedirect:   rivertype.JobStateRetryable,
		http.StatusPermanentRedirect:   rivertype.JobStateRetryable,
		http.StatusUnauthorized:        rivertype.JobStateRetryable,
		http.StatusForbidden:           rivertype.JobStateRetryable,
		http.StatusNotFound:            rivertype.JobStateRetryable,
		http.StatusMethodNotAllowed:    rivertype.JobStateRetryable,
		http.StatusProxyAuthRequired:   rivertype.JobStateRetryable,
		http.StatusServiceUnavailable:  rivertype.JobStateRetryable,
		http.StatusBadRequest:          rivertype.JobStateCancelled,
		http.StatusUnprocessableEntity: rivertype.JobStateCancelled,
	}
	eventStatus := map[string]int{}
	for code := range want {
		eventStatus[uuid.NewString()] = code
	}
	endpoint := startScriptedEndpoint(t, eventStatus)
	pool, _ := testkit.NewPool(t)
	logs := &testkit.Buffer{}
	// Retries are an hour away: each job is seen after its first attempt.
	retry := job.RetrySchedule{Base: time.Hour, Max: time.Hour, For: 2 * time.Hour}
	client, err := job.NewClient(pool, job.Deps{
		Sink:   analytics.NewHTTPSink(endpoint.srv.URL+"/events", 5*time.Second),
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	}, job.Settings{
		EmailConcurrency:     1,
		AnalyticsConcurrency: 4,
		FetchCooldown:        10 * time.Millisecond,
		FetchPollInterval:    50 * time.Millisecond,
		JobTimeout:           10 * time.Second,
		RescueAfter:          time.Minute,
		Retry:                retry,
	})
	require.NoError(t, err)
	events, cancelSubscription := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	t.Cleanup(cancelSubscription)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})

	params := make([]river.InsertManyParams, 0, len(eventStatus))
	for id := range eventStatus {
		params = append(params, river.InsertManyParams{
			Args: job.AnalyticsEventArgs{
				EventID: id, EventKind: "application.submitted", ApplicationID: uuid.NewString(),
				PostingSlug: "engineer", OccurredAt: time.Now(),
			},
			InsertOpts: &river.InsertOpts{Queue: job.QueueAnalytics, MaxAttempts: retry.MaxAttempts()},
		})
	}
	_, err = client.InsertMany(t.Context(), params)
	require.NoError(t, err)

	got := map[int]rivertype.JobState{}
	stored := map[int]string{}
	timeout := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-events:
			var args job.AnalyticsEventArgs
			require.NoError(t, json.Unmarshal(ev.Job.EncodedArgs, &args))
			code := eventStatus[args.EventID]
			got[code] = ev.Job.State
			if n := len(ev.Job.Errors); n > 0 {
				stored[code] = ev.Job.Errors[n-1].Error
			}
		case <-timeout:
			t.Fatalf("jobs still unfinished after 20s; outcomes so far: %v", got)
		}
	}
	require.Equal(t, want, got, "job state by the sink's answer")
	for code := range want {
		if code == http.StatusOK {
			continue
		}
		require.Contains(t, stored[code], "answered "+strconv.Itoa(code), "status %d", code)
		require.NotContains(t, stored[code], "ada@example.com", "status %d", code)
	}
	endpoint.mu.Lock()
	defer endpoint.mu.Unlock()
	require.Zero(t, endpoint.targetCalls, "the sink followed a redirect")
	require.NotContains(t, logs.String(), "ada@example.com")
}

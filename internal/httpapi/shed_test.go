package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

// Many submits at once against a bound of three: the three that get a turn
// are held in the database (the test locks the outbox), and every other
// one is answered 503 overloaded with Retry-After once the short wait is
// over, having stored nothing. Never more than three reach the database;
// once the lock goes, the three are stored once each, and a shed request
// retried with its key goes through.
func TestSubmitShedsPastTheBound(t *testing.T) {
	t.Parallel()
	const bound, clients = 3, 20
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.SubmitConcurrency = bound
		c.SubmitWait = 50 * time.Millisecond
		// The held submits wait on the test's lock, not on these.
		c.RequestTimeout = time.Minute
		c.IdempotencyWait = 30 * time.Second
	}})
	slug := api.CreatePosting(t, "shed")

	lock, err := api.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(t.Context()) }()
	_, err = lock.Exec(t.Context(), "LOCK TABLE outbox_events IN EXCLUSIVE MODE")
	require.NoError(t, err)

	type answer struct {
		key, retryAfter, contentType string
		status                       int
		body                         []byte
		err                          error
	}
	answers := make(chan answer, clients)
	submit := func(key string) answer {
		body := fmt.Sprintf(`{"full_name":"Applicant","email":"%s@example.com"}`, key)
		req, err := http.NewRequest(http.MethodPost, api.URL+"/api/v1/jobs/"+slug+"/applications", strings.NewReader(body))
		if err != nil {
			return answer{key: key, err: err}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{key: key, err: err}
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return answer{key: key, status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"),
			contentType: res.Header.Get("Content-Type"), body: b, err: err}
	}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { answers <- submit(fmt.Sprintf("shed-%d", i)) })
	}

	var shed []answer
	for len(shed) < clients-bound {
		select {
		case a := <-answers:
			require.NoError(t, a.err)
			require.Equal(t, http.StatusServiceUnavailable, a.status, "%s: %s", a.key, a.body)
			shed = append(shed, a)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d answers while %d submits are held; want %d", len(shed), bound, clients-bound)
		}
	}
	// The admitted submits reach the lock in their own time (the last of
	// them may still be on its way when the others are shed): wait for all
	// of them, and never see more.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var held int
		require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&held))
		require.LessOrEqual(t, held, bound, "submits in the database at once")
		if held == bound {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d of %d admitted submits reached the database", held, bound)
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range shed {
		require.Equal(t, "1", a.retryAfter, a.key)
		require.Equal(t, "application/problem+json", a.contentType, a.key)
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		require.NoError(t, json.Unmarshal(a.body, &p))
		require.Equal(t, "overloaded", p.Type)
		require.Equal(t, http.StatusServiceUnavailable, p.Status)
	}

	require.NoError(t, lock.Rollback(t.Context()))
	wg.Wait()
	close(answers)
	ids := map[string]bool{}
	for a := range answers {
		require.NoError(t, a.err)
		require.Equal(t, http.StatusCreated, a.status, "%s: %s", a.key, a.body)
		var created struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(a.body, &created))
		ids[created.ID] = true
	}
	require.Len(t, ids, bound)
	require.Equal(t, bound, api.Count(t, "applications"), "only the answered 201s are stored")
	require.Equal(t, bound, api.Count(t, "idempotency_keys"), "a shed request leaves its key free")
	for id := range ids {
		var n int
		require.NoError(t, api.Pool.QueryRow(t.Context(), "SELECT count(*) FROM applications WHERE id = $1", id).Scan(&n))
		require.Equal(t, 1, n, id)
	}
	require.Contains(t, api.Metrics(t), fmt.Sprintf(`intake_submits_total{outcome="overloaded"} %d`, clients-bound))

	retry := submit(shed[0].key)
	require.NoError(t, retry.err)
	require.Equal(t, http.StatusCreated, retry.status, string(retry.body))
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

// queueSubmits has the API queue every submit of a burst instead of
// shedding past INTAKE_SUBMIT_CONCURRENCY (TestSubmitShedsPastTheBound):
// these tests are about what the burst stores, so every client must get
// through.
var queueSubmits = &testkit.APIOpts{Configure: func(c *config.Config) {
	c.SubmitWait = 5 * time.Second
	c.DBAcquireTimeout = 5 * time.Second
}}

// 100 clients send the same request with the same key at the same moment:
// exactly one application and one event, and every client gets the same 201.
func TestSubmitSameKeyConcurrently(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, queueSubmits)
	slug := api.CreatePosting(t, "go-engineer")

	const clients = 100
	results := make([]testkit.Response, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			<-start
			results[i] = api.Submit(t, slug, "same-key", validBody)
		})
	}
	close(start)
	wg.Wait()

	var created, replayed int
	for _, res := range results {
		require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
		require.Equal(t, string(results[0].Body), string(res.Body), "every client gets the original response")
		if res.Header.Get("Idempotent-Replayed") == "true" {
			replayed++
		} else {
			created++
		}
	}
	t.Logf("%d clients, one key: %d created, %d replayed; applications=%d events=%d",
		clients, created, replayed, api.Count(t, "applications"), api.Count(t, "outbox_events"))
	require.Equal(t, 1, created)
	require.Equal(t, clients-1, replayed)
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "outbox_events"))
	require.Equal(t, 1, api.Count(t, "idempotency_keys"))
}

// 50 clients apply to one posting with the same email, written 50 ways,
// each under its own key: one application, 49 duplicates that say nothing
// about it.
func TestSubmitSameEmailConcurrently(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, queueSubmits)
	slug := api.CreatePosting(t, "go-engineer")

	const clients = 50
	results := make([]testkit.Response, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		email := "ada.lovelace@example.com"
		if i%2 == 1 {
			email = strings.ToUpper(email)
		}
		email = strings.Repeat(" ", i%3) + email + strings.Repeat(" ", i%4)
		body := fmt.Sprintf(`{"full_name":"Ada %d","email":%q}`, i, email)
		wg.Go(func() {
			<-start
			results[i] = api.Submit(t, slug, fmt.Sprintf("key-%d", i), body)
		})
	}
	close(start)
	wg.Wait()

	var created []string
	duplicates := 0
	for _, res := range results {
		switch res.Status {
		case http.StatusCreated:
			var r receipt
			require.NoError(t, json.Unmarshal(res.Body, &r))
			created = append(created, r.ID)
		case http.StatusConflict:
			p := requireProblem(t, res, http.StatusConflict, "duplicate-application")
			require.Empty(t, p.Errors)
			duplicates++
		default:
			t.Fatalf("unexpected status %d: %s", res.Status, res.Body)
		}
	}
	t.Logf("%d clients, one email: %d created, %d duplicate-application; applications=%d",
		clients, len(created), duplicates, api.Count(t, "applications"))
	require.Len(t, created, 1)
	require.Equal(t, clients-1, duplicates)
	for _, res := range results {
		if res.Status == http.StatusConflict {
			require.NotContains(t, string(res.Body), created[0])
		}
	}
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "outbox_events"))
	require.Equal(t, 1, api.Count(t, "idempotency_keys"))
}

// Invariant 1 through the API: when the event insert fails, the request
// fails and nothing of it is left, not the application, not the key.
func TestSubmitFailingEventInsertLeavesNothing(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{InjectsFaults: true})
	slug := api.CreatePosting(t, "go-engineer")
	ctx := context.Background()
	_, err := api.Pool.Exec(ctx, `
		CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected failure'; END $$;
		CREATE TRIGGER test_refuse_event BEFORE INSERT ON outbox_events
		FOR EACH ROW EXECUTE FUNCTION test_refuse_event();`)
	require.NoError(t, err)

	res := api.Submit(t, slug, "key-1", validBody)

	requireProblem(t, res, http.StatusInternalServerError, "internal")
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "outbox_events"))
	require.Zero(t, api.Count(t, "idempotency_keys"))

	// Once the fault is gone, a retry with the same key succeeds once.
	_, err = api.Pool.Exec(ctx, `DROP TRIGGER test_refuse_event ON outbox_events`)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
	require.Equal(t, 1, api.Count(t, "applications"))
	require.Equal(t, 1, api.Count(t, "outbox_events"))
}

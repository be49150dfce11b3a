package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/ops"
)

func get(t *testing.T, h http.Handler, path string) (int, http.Header, map[string]any) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, resp.Header, body
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	ready := func(context.Context) error { return nil }
	count := func(n int64, err error) func(context.Context) (int64, error) {
		return func(context.Context) (int64, error) { return n, err }
	}

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		status, h, body := get(t, ops.Handler(ready, count(0, nil), nil, nil), "/readyz")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "application/json", h.Get("Content-Type"))
		require.Equal(t, map[string]any{"status": "ready", "outbox_quarantined": 0.0}, body)
	})

	// Quarantined events need an operator, not a worker taken out of
	// service: ready, with the count and a warning.
	t.Run("quarantined events", func(t *testing.T) {
		t.Parallel()
		status, _, body := get(t, ops.Handler(ready, count(2, nil), nil, nil), "/readyz")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "ready", body["status"])
		require.Equal(t, 2.0, body["outbox_quarantined"])
		require.Contains(t, body["warning"], "2 outbox events quarantined")
		require.Contains(t, body["warning"], "intakectl outbox list")
	})

	t.Run("not ready", func(t *testing.T) {
		t.Parallel()
		notReady := func(context.Context) error { return errors.New("schema not at the expected version") }
		status, h, body := get(t, ops.Handler(notReady, count(0, nil), nil, nil), "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, "application/problem+json", h.Get("Content-Type"))
		require.Equal(t, "2", h.Get("Retry-After"))
		require.Equal(t, "schema not at the expected version", body["detail"])
	})

	t.Run("quarantine unknown", func(t *testing.T) {
		t.Parallel()
		status, _, body := get(t, ops.Handler(ready, count(0, errors.New("database unavailable")), nil, nil), "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, "database unavailable", body["detail"])
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	notReady := func(context.Context) error { return errors.New("down") }
	status, _, body := get(t, ops.Handler(notReady, nil, nil, nil), "/healthz")
	require.Equal(t, http.StatusOK, status, "alive even when not ready")
	require.Equal(t, map[string]any{"status": "ok"}, body)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ready := func(context.Context) error { return nil }
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("intake_up 1\n")) })

	srv := httptest.NewServer(ops.Handler(ready, nil, metrics, nil))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "intake_up 1\n", string(body))

	// Without a quarantine count (the API) /readyz leaves it out.
	status, _, readyBody := get(t, ops.Handler(ready, nil, metrics, nil), "/readyz")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]any{"status": "ready"}, readyBody)

	without := httptest.NewServer(ops.Handler(ready, nil, nil, nil))
	t.Cleanup(without.Close)
	resp, err = http.Get(without.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestReadyGauge(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var fail atomic.Bool
	g := ops.ReadyGauge(func(context.Context) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("down")
		}
		return nil
	}, time.Hour)
	require.Equal(t, 1.0, testutil.ToFloat64(g))
	fail.Store(true)
	require.Equal(t, 1.0, testutil.ToFloat64(g), "cached until maxAge")
	require.Equal(t, int32(1), calls.Load())

	g = ops.ReadyGauge(func(context.Context) error { return errors.New("down") }, 0)
	require.Equal(t, 0.0, testutil.ToFloat64(g))
}

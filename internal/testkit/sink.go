package testkit

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Sink is a real HTTP analytics endpoint that deduplicates on the
// Idempotency-Key header like a well-behaved one would, and records every
// call. SetDown makes it answer 503.
type Sink struct {
	URL string

	down atomic.Bool
	mu   sync.Mutex
	// Records maps event id to the record body, stored once per id.
	records map[string]json.RawMessage
	calls   map[string]int
}

// StartSink starts the endpoint and stops it when the test ends.
func StartSink(tb testing.TB) *Sink {
	tb.Helper()
	s := &Sink{records: map[string]json.RawMessage{}, calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *Sink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	body, err := io.ReadAll(r.Body)
	if err != nil || key == "" || !json.Valid(body) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[key]++
	if _, ok := s.records[key]; !ok {
		s.records[key] = body
	}
	w.WriteHeader(http.StatusAccepted)
}

// SetDown makes the endpoint answer 503 (true) or work again (false).
func (s *Sink) SetDown(down bool) { s.down.Store(down) }

// Records returns a copy of the recorded bodies by event id.
func (s *Sink) Records() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.records))
	for k, v := range s.records {
		out[k] = v
	}
	return out
}

// Calls returns how many accepted calls each event id got.
func (s *Sink) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

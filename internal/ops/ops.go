// Package ops serves the operations endpoints (health, readiness and
// metrics) of both binaries on their private ops listeners, with net/http
// alone: the worker side never imports echo.
package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Handler serves /healthz (the process is alive), /readyz (ready returns
// nil: the database answers and the schema is current) and, when metrics is
// not nil, /metrics.
//
// quarantined counts the outbox events set aside because they cannot
// become jobs. /readyz names them but stays 200: a poison event is bad
// data, not a bad worker; every worker sees the same event, so failing
// readiness for it would take all of them out of service (and stall a
// rollout) while they work fine for everything else. intakectl status
// exits 1 for it instead, and the IntakeOutboxQuarantined alert fires.
// A nil quarantined (the API) leaves the count out.
//
// riverUI, when not nil (the worker), is served under /riverui/; it comes
// already behind Guard.
func Handler(ready func(context.Context) error, quarantined func(context.Context) (int64, error), metrics, riverUI http.Handler) http.Handler {
	mux := http.NewServeMux()
	if riverUI != nil {
		mux.Handle("/riverui/", riverUI)
	}
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := ready(ctx)
		var n int64
		if err == nil && quarantined != nil {
			n, err = quarantined(ctx)
		}
		if err != nil {
			w.Header().Set("Retry-After", "2")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{
				"type": "not-ready", "title": "Not ready", "status": http.StatusServiceUnavailable, "detail": err.Error(),
			})
			return
		}
		body := map[string]any{"status": "ready"}
		if quarantined != nil {
			body["outbox_quarantined"] = n
		}
		if n > 0 {
			body["warning"] = fmt.Sprintf("%d outbox events quarantined: they cannot become jobs until fixed and retried (intakectl outbox list)", n)
		}
		writeJSON(w, http.StatusOK, body)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if status >= 400 {
		w.Header().Set("Content-Type", "application/problem+json")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

package job

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// A send's cut-off, once a beat has moved it on, keeps the monotonic
// reading of the beat's time: the guard's timer then measures it on the
// monotonic clock, and a step of the wall clock (an NTP step, a VM
// resumed) moves neither the cut-off nor the lease it must stay inside.
func TestGuardCutOffAfterBeatIsMonotonic(t *testing.T) {
	pool, _ := testkit.NewPool(t)
	h := &Heartbeat{
		Store:     postgres.NewStore(pool),
		Self:      postgres.Worker{ID: "worker-clock", Hostname: "test", PID: 1, StartedAt: time.Now()},
		Interval:  time.Second,
		Lease:     3 * time.Second,
		DeadAfter: 10 * time.Second,
		Logger:    slog.New(slog.DiscardHandler),
	}
	taken := time.Now()
	confirmed := time.Now()
	if err := h.Beat(t.Context()); err != nil {
		t.Fatal(err)
	}
	until := h.sendableUntil(taken, confirmed)
	if !until.After(taken.Add(h.Lease - h.Lease/5)) {
		t.Fatalf("the beat after the attempt started did not move its cut-off: %s", until)
	}
	if !strings.Contains(until.String(), " m=") {
		t.Fatalf("cut-off %s has no monotonic reading: the guard follows the wall clock", until)
	}
}

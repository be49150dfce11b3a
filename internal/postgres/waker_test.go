package postgres_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// listen returns a connection of its own (as the relay has) listening on
// the outbox channel. NOTIFY reaches listeners of the same database only, so
// each test's fresh database keeps its notifications to itself.
func listen(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(t.Context(), "LISTEN "+postgres.OutboxChannel)
	require.NoError(t, err)
	return conn
}

// startWaker runs a waker until the test ends.
func startWaker(t *testing.T, pool *pgxpool.Pool, logger *slog.Logger, minInterval time.Duration) *postgres.Waker {
	t.Helper()
	w := postgres.NewWaker(pool, logger, minInterval)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return w
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// receive returns the notifications conn receives until window passes.
func receive(t *testing.T, conn *pgx.Conn, window time.Duration) []*pgconn.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), window)
	defer cancel()
	var got []*pgconn.Notification
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.NoError(t, t.Context().Err())
			return got
		}
		got = append(got, n)
	}
}

func TestWakerNotifies(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.NewPool(t)
	conn := listen(t, dbURL)
	w := startWaker(t, pool, discardLogger(), 5*time.Millisecond)

	for range 10 {
		w.Wake()
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	require.NoError(t, err, "no NOTIFY within 5s of Wake")
	require.Equal(t, postgres.OutboxChannel, n.Channel)
	require.Equal(t, "intake_outbox", n.Channel)
	require.Empty(t, n.Payload, "the payload is empty: the outbox row is the message")
}

func TestWakerCoalescesBursts(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.NewPool(t)
	conn := listen(t, dbURL)
	const minInterval = 50 * time.Millisecond
	w := startWaker(t, pool, discardLogger(), minInterval)

	start := time.Now()
	for range 1000 {
		w.Wake()
	}
	burst := time.Since(start)

	// Everything the burst causes arrives within one interval after it; ten
	// intervals leave room for a slow machine.
	got := receive(t, conn, burst+10*minInterval)

	// One NOTIFY right away, one for the wake-ups that came while it was
	// sent, and at most one more per interval the burst lasted.
	most := 2 + int(burst/minInterval)
	require.NotEmpty(t, got, "no NOTIFY for a burst of wake-ups")
	require.LessOrEqual(t, len(got), most, "1000 wake-ups in %v gave %d NOTIFYs", burst, len(got))
	t.Logf("1000 wake-ups in %v: %d NOTIFYs", burst, len(got))
}

func TestWakerDelaysWakeUpsWithinInterval(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.NewPool(t)
	conn := listen(t, dbURL)
	const minInterval = 200 * time.Millisecond
	w := startWaker(t, pool, discardLogger(), minInterval)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	w.Wake()
	_, err := conn.WaitForNotification(ctx)
	require.NoError(t, err)
	first := time.Now()

	// A commit right after a NOTIFY: its wake-up is held back for the rest
	// of the interval, not dropped.
	w.Wake()
	_, err = conn.WaitForNotification(ctx)
	require.NoError(t, err, "a wake-up during the quiet interval was lost")
	require.GreaterOrEqual(t, time.Since(first), minInterval/2, "second NOTIFY came before the interval")
}

func TestWakerRunReturnsWhenCancelled(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		// prepare gets Run into the state it is cancelled in.
		prepare func(t *testing.T, w *postgres.Waker, conn *pgx.Conn, logs *testkit.Buffer)
		// unreachable points the waker's pool at a port where nothing listens.
		unreachable bool
	}{
		{
			name:    "idle",
			prepare: func(*testing.T, *postgres.Waker, *pgx.Conn, *testkit.Buffer) {},
		},
		{
			name: "waiting out the interval",
			prepare: func(t *testing.T, w *postgres.Waker, conn *pgx.Conn, _ *testkit.Buffer) {
				w.Wake()
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				_, err := conn.WaitForNotification(ctx)
				require.NoError(t, err)
				w.Wake() // pending: dropped at cancel, the relay's poll finds the event
			},
		},
		{
			name:        "database unreachable",
			unreachable: true,
			prepare: func(t *testing.T, w *postgres.Waker, _ *pgx.Conn, logs *testkit.Buffer) {
				w.Wake()
				require.Eventually(t, func() bool {
					return strings.Contains(logs.String(), "outbox wake-up not sent")
				}, 5*time.Second, 5*time.Millisecond)
				w.Wake()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, dbURL := testkit.NewPool(t)
			conn := listen(t, dbURL)
			if tt.unreachable {
				pool = openPool(t, "postgres://postgres@"+closedPort(t)+"/intake?sslmode=disable", nil)
			}
			logs := &testkit.Buffer{}
			w := postgres.NewWaker(pool, slog.New(slog.NewJSONHandler(logs, nil)), time.Hour)

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.Run(ctx)
			}()
			tt.prepare(t, w, conn, logs)

			cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("Run did not return within 2s of its context being cancelled")
			}
		})
	}
}

package postgres_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// BenchmarkSubmitWakeUp shows what waking the relay costs the submit path,
// depending on where the NOTIFY is sent:
//
//   - notify=none: no wake-up at all, the baseline;
//   - notify=in-tx: pg_notify inside the submit transaction (simulated by a
//     trigger on outbox_events, so production code is untouched). Postgres
//     serialises the commits of all notifying transactions on one global
//     lock, so concurrent submits queue behind each other's commit flush;
//   - notify=after-commit: Store.Submit then Waker.Wake, as the API does:
//     the NOTIFY is sent after commit by one goroutine, coalesced.
//
// Each mode runs 8 concurrent submitters against one posting of a fresh
// database, with the relay's LISTEN connection draining notifications.
// Besides ns/op it reports submits/s and notifies/op (NOTIFYs received per
// submit).
func BenchmarkSubmitWakeUp(b *testing.B) {
	const submitters = 8
	for _, mode := range []string{"none", "in-tx", "after-commit"} {
		b.Run("notify="+mode, func(b *testing.B) {
			ctx := b.Context()
			dbURL := testkit.NewDB(b)
			pool, err := postgres.NewPool(ctx, dbURL, &postgres.PoolOpts{MaxConns: submitters + 2})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(pool.Close)
			store := postgres.NewStore(pool)
			if _, err := store.CreatePosting(ctx, application.NewPosting{Slug: "bench", Title: "Bench"}); err != nil {
				b.Fatal(err)
			}
			notifies := drainNotifications(b, dbURL)

			wake := func() {}
			switch mode {
			case "in-tx":
				_, err := pool.Exec(ctx, `
					CREATE FUNCTION bench_notify_in_tx() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN
						PERFORM pg_notify('`+postgres.OutboxChannel+`', '');
						RETURN NULL;
					END;
					$$;
					CREATE TRIGGER bench_notify_in_tx AFTER INSERT ON outbox_events
						FOR EACH ROW EXECUTE FUNCTION bench_notify_in_tx();`)
				if err != nil {
					b.Fatal(err)
				}
			case "after-commit":
				// The API's waker and interval (cmd/intake-api).
				waker := postgres.NewWaker(pool, discardLogger(), 5*time.Millisecond)
				wakerCtx, stop := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() { waker.Run(wakerCtx) })
				b.Cleanup(func() { stop(); wg.Wait() })
				wake = waker.Wake
			}
			warmPool(b, pool)

			// RunParallel starts parallelism*GOMAXPROCS goroutines; any
			// beyond the 8 submitters (when GOMAXPROCS does not divide 8)
			// leave at once and the 8 share all b.N submits.
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((submitters + procs - 1) / procs)
			var seq atomic.Int64
			var started atomic.Int32
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				if started.Add(1) > submitters {
					return
				}
				for pb.Next() {
					n := strconv.FormatInt(seq.Add(1), 10)
					sub := newSubmission(b, submissionOpts{
						Slug:  "bench",
						Key:   "bench-" + n,
						Email: "applicant-" + n + "@example.com",
					})
					if _, err := store.Submit(ctx, sub); err != nil {
						b.Error(err)
						return
					}
					wake()
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
			b.ReportMetric(float64(notifies.Load())/float64(b.N), "notifies/op")
		})
	}
}

// drainNotifications listens on the outbox channel, as the relay does, and
// counts what arrives until the benchmark ends.
func drainNotifications(b *testing.B, dbURL string) *atomic.Int64 {
	b.Helper()
	conn, err := pgx.Connect(b.Context(), dbURL)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(b.Context(), "LISTEN "+postgres.OutboxChannel); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return
			}
			n.Add(1)
		}
	})
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = conn.Close(context.Background())
	})
	return &n
}

// warmPool opens all of the pool's connections before the timer starts.
func warmPool(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	conns := make([]*pgxpool.Conn, pool.Config().MaxConns)
	for i := range conns {
		c, err := pool.Acquire(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
}

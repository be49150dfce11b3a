package postgres_test

import (
	"context"
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

// BenchmarkDeliveryFence measures what fencing a send costs at 20
// concurrent sends (INTAKE_EMAIL_CONCURRENCY's default), the send itself
// simulated by a 5 ms pause:
//
//   - fence=lease: what the worker does. One short transaction takes the
//     lease (attempts + 1, lease_expires_at), the send runs with no
//     transaction open, a second records "sent" for that attempt only.
//   - fence=rowlock: the alternative. One transaction locks the delivery
//     row (FOR UPDATE), counts the attempt, sends while holding the lock,
//     records and commits: one commit fewer, but a connection and an open
//     transaction held for the whole send.
//
// The lease costs two commits a send, the row lock one. It reports sends/s
// and the pool connections held on average (sampled every millisecond).
func BenchmarkDeliveryFence(b *testing.B) {
	const (
		senders  = 20
		sendTime = 5 * time.Millisecond
	)
	for _, mode := range []string{"lease", "rowlock"} {
		b.Run("fence="+mode, func(b *testing.B) {
			ctx := b.Context()
			dbURL := testkit.NewDB(b)
			pool, err := postgres.NewPool(ctx, dbURL, &postgres.PoolOpts{MaxConns: 44})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(pool.Close)
			store := postgres.NewStore(pool)
			if _, err := store.CreatePosting(ctx, application.NewPosting{Slug: "bench", Title: "Bench"}); err != nil {
				b.Fatal(err)
			}
			testkit.Seed(b, pool, "bench", b.N)
			if _, err := pool.Exec(ctx, `INSERT INTO deliveries (application_id) SELECT id FROM applications`); err != nil {
				b.Fatal(err)
			}
			rows, err := pool.Query(ctx, `SELECT id::text FROM applications`)
			if err != nil {
				b.Fatal(err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				b.Fatal(err)
			}

			send := func(id string) error {
				_, attempt, err := store.DeliveryAttemptStart(ctx, id, time.Minute)
				if err != nil {
					return err
				}
				time.Sleep(sendTime)
				return store.DeliverySent(ctx, id, attempt)
			}
			if mode == "rowlock" {
				send = func(id string) error { return rowLockSend(ctx, pool, id, sendTime) }
			}

			stopSampling := sampleAcquired(pool)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			began := time.Now()
			for range senders {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(len(ids)) {
							return
						}
						if err := send(ids[i]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(began)
			b.StopTimer()
			held := stopSampling()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
			b.ReportMetric(held, "conns-held")
		})
	}
}

// rowLockSend is the fence by row lock, for comparison only.
func rowLockSend(ctx context.Context, pool *pgxpool.Pool, id string, sendTime time.Duration) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM deliveries WHERE application_id = $1 FOR UPDATE`, id).Scan(&state); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'sending', attempts = attempts + 1, last_attempt_at = now() WHERE application_id = $1`, id); err != nil {
			return err
		}
		time.Sleep(sendTime)
		_, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'sent', sent_at = now() WHERE application_id = $1`, id)
		return err
	})
}

// sampleAcquired samples how many connections the pool has acquired,
// every millisecond, until the returned stop is called; stop returns the
// mean.
func sampleAcquired(pool *pgxpool.Pool) (stop func() float64) {
	done := make(chan struct{})
	var sum, samples int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sum += int64(pool.Stat().AcquiredConns())
				samples++
			}
		}
	})
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(sum) / float64(max(samples, 1))
	}
}

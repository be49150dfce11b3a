package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// statsSettle is how long the harness waits before reading the database's
// counters after the work it measures: a backend that goes idle reports
// its counts to pg_stat_database within 10 s (PostgreSQL's
// PGSTAT_IDLE_INTERVAL), not at once.
const statsSettle = 11 * time.Second

// dbCounters are the bench database's cumulative counters from
// pg_stat_database: every transaction committed (an autocommit statement
// counts as one), every row inserted and updated, by every process on it.
type dbCounters struct {
	Commits int64
	Inserts int64
	Updates int64
}

func readCounters(ctx context.Context, pool *pgxpool.Pool) (dbCounters, error) {
	var c dbCounters
	err := pool.QueryRow(ctx, `SELECT xact_commit, tup_inserted, tup_updated
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&c.Commits, &c.Inserts, &c.Updates)
	return c, err
}

func (c dbCounters) sub(before dbCounters) dbCounters {
	return dbCounters{Commits: c.Commits - before.Commits, Inserts: c.Inserts - before.Inserts, Updates: c.Updates - before.Updates}
}

// PerApplication is a counter delta divided by the applications that caused
// it. It includes whatever the processes did meanwhile with nothing to do
// (the idle phase measures that alone).
type PerApplication struct {
	Applications int     `json:"applications"`
	Commits      float64 `json:"commits"`
	Inserts      float64 `json:"inserts"`
	Updates      float64 `json:"updates"`
}

func perApplication(d dbCounters, n int) PerApplication {
	return PerApplication{
		Applications: n,
		Commits:      round(div(float64(d.Commits), float64(n)), 2),
		Inserts:      round(div(float64(d.Inserts), float64(n)), 2),
		Updates:      round(div(float64(d.Updates), float64(n)), 2),
	}
}

// waitAnalytics waits until the sink table holds n records (the Postgres
// sink), so the counters read next include the analytics side.
func (b *bench) waitAnalytics(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var got int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM analytics_events").Scan(&got); err != nil {
			return err
		}
		if got >= n || time.Now().After(deadline) {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

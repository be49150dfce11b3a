package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/intake/intake/internal/postgres"
)

// drainPhase lets one worker drain a backlog of applications, then has
// River work as many no-op jobs in the same database, with the email
// queue's settings, for the ratios of the two: jobs of both kinds against
// no-op jobs, and emails alone against no-op jobs (each email is a no-op
// job plus its ledger and the SMTP exchange).
func (b *bench) drainPhase(ctx context.Context) error {
	n := b.opts.Backlog
	phase := &DrainPhase{Applications: n}
	b.report.Drain = phase
	b.logf("drain: seeding %d applications", n)
	if err := seedBacklog(ctx, b.pool, "drain-"+b.runID, n, true); err != nil {
		return err
	}
	b.sink.reset()
	// From the launch, not the worker's "working" line: its relay writes
	// the analytics records in its first rounds, which may come before it.
	start := time.Now()
	worker, err := b.startWorker(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if phase.Peak == nil {
			phase.Peak = stopAll(phaseDrain, worker)
		}
	}()

	var emailsDone bool
	var analytics int
	var analyticsAt time.Time
	deadline := start.Add(b.opts.DrainTimeout)
	lastLog := start
	for polls := 0; ; polls++ {
		emails := b.sink.count()
		emailsDone = emails >= n
		if analyticsAt.IsZero() && (emailsDone || polls%5 == 0) {
			var at *time.Time
			if err := b.pool.QueryRow(ctx, "SELECT count(*), max(recorded_at) FROM analytics_events").Scan(&analytics, &at); err != nil {
				return err
			}
			if analytics >= n && at != nil {
				analyticsAt = *at
			}
		}
		if emailsDone && !analyticsAt.IsZero() {
			break
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			b.logf("drain: %d/%d emails, %d/%d analytics records after %.0f s", emails, n, analytics, n, time.Since(start).Seconds())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not drained within --drain-timeout %s: %d/%d emails", b.opts.DrainTimeout, emails, n)
		}
		if err := worker.exited(); err != nil {
			return err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	first, last, dups := b.sink.stats()
	phase.FirstEmailSeconds = round(first.Sub(start).Seconds(), 3)
	phase.EmailSeconds = round(last.Sub(start).Seconds(), 3)
	phase.EmailsPerSecond = round(div(float64(n), last.Sub(start).Seconds()), 1)
	phase.AnalyticsSeconds = round(analyticsAt.Sub(start).Seconds(), 3)
	phase.AnalyticsPerSecond = round(div(float64(n), analyticsAt.Sub(start).Seconds()), 1)
	phase.DuplicateEmails = dups
	phase.WorkerWarnings = worker.warningCount()
	b.logf("drain: %d emails in %.1f s (%.0f/s), analytics in %.1f s (%.0f/s)",
		n, phase.EmailSeconds, phase.EmailsPerSecond, phase.AnalyticsSeconds, phase.AnalyticsPerSecond)
	phase.Peak = stopAll(phaseDrain, worker)

	if err := resetTables(ctx, b.pool); err != nil {
		return err
	}
	jobs, seconds, err := b.rawRiver(ctx, n)
	if err != nil {
		return fmt.Errorf("raw River: %w", err)
	}
	phase.RawJobs = jobs
	phase.RawMaxWorkers = b.cfg.EmailConcurrency
	phase.RawSeconds = round(seconds, 3)
	phase.RawJobsPerSecond = round(div(float64(jobs), seconds), 1)
	phase.EmailRatio = round(div(phase.EmailsPerSecond, phase.RawJobsPerSecond), 3)
	b.logf("drain: raw River %d no-op jobs in %.1f s (%.0f/s); emails/s ÷ raw %.2f",
		jobs, seconds, phase.RawJobsPerSecond, phase.EmailRatio)
	return nil
}

// noopArgs is the trivial job River's own throughput is measured with.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "intake_bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

const noopQueue = "intake_bench"

// rawRiver inserts n no-op jobs, then starts a River client with the
// worker's email queue settings (MaxWorkers = INTAKE_EMAIL_CONCURRENCY,
// River's default fetch cooldown and poll interval) over a pool sized like
// the worker's, and times it until all n are completed.
func (b *bench) rawRiver(ctx context.Context, n int) (jobs int, seconds float64, err error) {
	pool, err := postgres.NewPool(ctx, b.dbURL, &postgres.PoolOpts{
		MaxConns:        max(b.cfg.DBMaxConns, int32(b.cfg.EmailConcurrency+b.cfg.AnalyticsConcurrency+4)),
		ApplicationName: "intake-bench-river",
	})
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            map[string]river.QueueConfig{noopQueue: {MaxWorkers: b.cfg.EmailConcurrency}},
		FetchCooldown:     b.cfg.FetchCooldown,
		FetchPollInterval: b.cfg.FetchPollInterval,
		Workers:           workers,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return 0, 0, err
	}

	const batch = 2000
	for lo := 0; lo < n; lo += batch {
		params := make([]river.InsertManyParams, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			params = append(params, river.InsertManyParams{Args: noopArgs{N: i}, InsertOpts: &river.InsertOpts{Queue: noopQueue}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return 0, 0, err
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE river_job"); err != nil {
		return 0, 0, err
	}

	completed, cancelSub := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: n + 100,
		Kinds:    []river.EventKind{river.EventKindJobCompleted},
	})
	defer cancelSub()
	if err := client.Start(ctx); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		if stopErr := client.Stop(stopCtx); stopErr != nil && err == nil {
			err = fmt.Errorf("stop River: %w", stopErr)
		}
	}()

	timeout := time.NewTimer(b.opts.DrainTimeout)
	defer timeout.Stop()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	var last time.Time
	for jobs < n {
		select {
		case ev := <-completed:
			if ev == nil {
				return jobs, 0, fmt.Errorf("subscription closed after %d jobs", jobs)
			}
			jobs++
			last = time.Now()
		case <-progress.C:
			b.logf("drain: raw River %d/%d jobs after %.0f s", jobs, n, time.Since(start).Seconds())
		case <-timeout.C:
			return jobs, 0, fmt.Errorf("%d/%d jobs completed within --drain-timeout %s", jobs, n, b.opts.DrainTimeout)
		case <-ctx.Done():
			return jobs, 0, ctx.Err()
		}
	}
	return jobs, last.Sub(start).Seconds(), nil
}

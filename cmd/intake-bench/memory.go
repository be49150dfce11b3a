package main

import (
	"context"
	"fmt"
	"time"
)

// memoryPhase collects the other phases' peaks and watches the worker's
// resident memory while a large backlog waits undispatched, then while it
// drains: it must not grow with the backlog.
//
// The backlog is held back from the running worker by a harness
// transaction that holds outbox_events in EXCLUSIVE mode: the relay's claim
// waits on it, as if another relay were busy, and the events stay in the
// table. Rolling that transaction back releases them.
func (b *bench) memoryPhase(ctx context.Context) error {
	m := b.opts.MemoryBacklog
	phase := &MemoryPhase{Backlog: m, Peaks: b.report.peaks()}
	b.report.Memory = phase
	b.logf("memory: seeding %d applications", m)
	if err := seedBacklog(ctx, b.pool, "memory-"+b.runID, m, true); err != nil {
		return err
	}
	b.sink.reset()

	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	hold, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = hold.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := hold.Exec(ctx, "LOCK TABLE outbox_events IN EXCLUSIVE MODE"); err != nil {
		return err
	}

	worker, err := b.startWorker(ctx)
	if err != nil {
		return err
	}
	defer func() {
		phase.Samples = worker.rss.sampleList()
		peak := stopAll(phaseMemory, worker)
		phase.Peaks = append(phase.Peaks, peak...)
	}()
	worker.rss.resetWindow() // start-up
	if err := sleep(ctx, b.opts.MemoryHold); err != nil {
		return err
	}
	phase.IdleMiB = round(worker.rss.current(), 1)
	phase.WaitingPeakMiB = round(worker.rss.resetWindow(), 1)
	if n := b.sink.count(); n != 0 {
		return fmt.Errorf("%d emails sent while the backlog was held back", n)
	}
	if err := hold.Rollback(ctx); err != nil {
		return err
	}
	b.logf("memory: worker %.1f MiB with %d events waiting; releasing them", phase.WaitingPeakMiB, m)

	start := time.Now()
	deadline := start.Add(b.opts.DrainTimeout)
	lastLog := start
	for b.sink.count() < m {
		if time.Now().After(deadline) {
			return fmt.Errorf("not drained within --drain-timeout %s: %d/%d emails", b.opts.DrainTimeout, b.sink.count(), m)
		}
		if err := worker.exited(); err != nil {
			return err
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			b.logf("memory: %d/%d emails after %.0f s, worker %.1f MiB", b.sink.count(), m, time.Since(start).Seconds(), worker.rss.current())
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	_, last, _ := b.sink.stats()
	phase.DrainSeconds = round(last.Sub(start).Seconds(), 3)
	phase.DrainPeakMiB = round(worker.rss.resetWindow(), 1)
	phase.Growth = round(div(phase.DrainPeakMiB, phase.WaitingPeakMiB), 3)
	b.logf("memory: drained in %.1f s, worker peak %.1f MiB (×%.2f)", phase.DrainSeconds, phase.DrainPeakMiB, phase.Growth)
	return nil
}

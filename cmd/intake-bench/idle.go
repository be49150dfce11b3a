package main

import (
	"context"
	"time"
)

// idlePhase runs one API and one worker with nothing to do and counts the
// database's commits per second: what Intake costs the database while no
// one applies (River's polls and leader election, the relay's poll,
// heartbeats, periodic jobs). The counting starts after a warm-up, so the
// start-up work (migration check, first election, periodic jobs run on
// start) is not in it.
func (b *bench) idlePhase(ctx context.Context) error {
	phase := &IdlePhase{WarmupSeconds: b.opts.IdleWarmup.Seconds()}
	b.report.Idle = phase
	api, _, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	var worker *process // stopAll skips it if it did not start
	defer func() { phase.Peak = stopAll(phaseIdle, api, worker) }()
	if worker, err = b.startWorker(ctx); err != nil {
		return err
	}

	if err := sleep(ctx, b.opts.IdleWarmup); err != nil {
		return err
	}
	before, err := readCounters(ctx, b.pool)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := sleep(ctx, b.opts.IdleDuration); err != nil {
		return err
	}
	after, err := readCounters(ctx, b.pool)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	for _, p := range []*process{api, worker} {
		if err := p.exited(); err != nil {
			return err
		}
	}
	d := after.sub(before)
	phase.Seconds = round(elapsed.Seconds(), 1)
	phase.Commits = d.Commits
	phase.CommitsPerSecond = round(div(float64(d.Commits), elapsed.Seconds()), 2)
	b.logf("idle: %d commits in %.1f s: %.2f commits/s", d.Commits, elapsed.Seconds(), phase.CommitsPerSecond)
	return nil
}

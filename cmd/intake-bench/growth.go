package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// growthConcurrency is the submitters of the growth phase's submit runs.
const growthConcurrency = 8

// relayBatch is the events per relay round the growth phase times.
const relayBatch = 500

// growthPhase measures the submit path (baseline, C=8) and the relay's
// round on an empty database, bulk-loads --growth-rows applications with
// their dispatched events, and measures again.
func (b *bench) growthPhase(ctx context.Context) error {
	phase := &GrowthPhase{}
	b.report.Growth = phase
	before, err := b.growthPoint(ctx, 0)
	if err != nil {
		return err
	}
	phase.Points = append(phase.Points, before)

	b.logf("growth: loading %d applications, events, keys and deliveries", b.opts.GrowthRows)
	start := time.Now()
	if err := growDatabase(ctx, b.pool, b.opts.GrowthRows); err != nil {
		return err
	}
	phase.LoadSeconds = round(time.Since(start).Seconds(), 3)

	after, err := b.growthPoint(ctx, b.opts.GrowthRows)
	if err != nil {
		return err
	}
	phase.Points = append(phase.Points, after)
	phase.SubmitRatio = round(div(after.Submit.PerSecond, before.Submit.PerSecond), 3)
	phase.ClaimRatio = round(div(after.Claim.P50, before.Claim.P50), 3)
	phase.DispatchRatio = round(div(after.Dispatch.P50, before.Dispatch.P50), 3)
	return nil
}

func (b *bench) growthPoint(ctx context.Context, rows int) (GrowthRow, error) {
	point := GrowthRow{ExistingRows: rows}
	// Only the events seeded below are undispatched.
	if _, err := b.pool.Exec(ctx, "UPDATE outbox_events SET dispatched_at = now() WHERE dispatched_at IS NULL"); err != nil {
		return point, err
	}
	if _, err := b.pool.Exec(ctx, "VACUUM ANALYZE outbox_events"); err != nil {
		return point, err
	}

	var claims, dispatches []time.Duration
	for round := range b.opts.GrowthRounds {
		if err := seedBacklog(ctx, b.pool, "growth-"+strconv.Itoa(rows)+"-"+strconv.Itoa(round)+"-"+b.runID, relayBatch, false); err != nil {
			return point, err
		}
		claim, err := b.timeClaim(ctx)
		if err != nil {
			return point, err
		}
		claims = append(claims, claim)

		t0 := time.Now()
		d, err := b.store.DispatchEvents(ctx, relayBatch, func(context.Context, pgx.Tx, []application.Event) error { return nil })
		if err != nil {
			return point, fmt.Errorf("DispatchEvents: %w", err)
		}
		dispatches = append(dispatches, time.Since(t0))
		if d.Events != relayBatch {
			return point, fmt.Errorf("DispatchEvents dispatched %d events, want %d", d.Events, relayBatch)
		}
	}
	point.Claim = summarize(claims)
	point.Dispatch = summarize(dispatches)

	t, err := b.baselineSubmit(ctx, growthConcurrency, false)
	if err != nil {
		return point, err
	}
	if t.Requests == 0 {
		return point, fmt.Errorf("submit: no request succeeded (first error: %s)", t.FirstError)
	}
	point.Submit = t
	b.logf("growth %8d rows: submit C=%d %.0f req/s p50 %.1f p99 %.1f ms; OutboxClaim p50 %.2f ms; DispatchEvents p50 %.2f ms",
		rows, growthConcurrency, t.PerSecond, t.Latency.P50, t.Latency.P99, point.Claim.P50, point.Dispatch.P50)
	return point, nil
}

// timeClaim times the relay's claim query (OutboxClaim, 500 events, FOR
// UPDATE SKIP LOCKED) in a transaction it rolls back.
func (b *bench) timeClaim(ctx context.Context) (time.Duration, error) {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	t0 := time.Now()
	rows, err := dbsqlc.New(tx).OutboxClaim(ctx, relayBatch)
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("OutboxClaim: %w", err)
	}
	if len(rows) != relayBatch {
		return 0, fmt.Errorf("OutboxClaim claimed %d events, want %d", len(rows), relayBatch)
	}
	return d, nil
}

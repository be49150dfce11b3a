package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// maxInFlight bounds the open-loop generator's concurrent requests.
const maxInFlight = 2000

// e2ePhase submits at fixed rates (open loop) with a worker running and
// measures, per application, submit→201 and submit→SMTP acceptance.
func (b *bench) e2ePhase(ctx context.Context) error {
	phase := &E2EPhase{}
	b.report.E2E = phase
	b.sink.reset()
	api, baseURL, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	var worker *process // stopAll skips it if it did not start
	defer func() { phase.Peak = stopAll(phaseE2E, api, worker) }()
	if worker, err = b.startWorker(ctx); err != nil {
		return err
	}
	client := newHTTPClient(256)
	defer client.CloseIdleConnections()

	// The counters start once the processes' start-up work is counted.
	if err := sleep(ctx, statsSettle); err != nil {
		return err
	}
	created := 0
	for _, rate := range b.opts.Rates {
		before, err := readCounters(ctx, b.pool)
		if err != nil {
			return err
		}
		row, err := b.e2eRate(ctx, client, baseURL, worker, rate)
		if err != nil {
			return fmt.Errorf("rate %.0f/s: %w", rate, err)
		}
		created += row.Created
		if err := b.waitAnalytics(ctx, created, max(30*time.Second, b.opts.RateDuration)); err != nil {
			return err
		}
		if err := sleep(ctx, statsSettle); err != nil {
			return err
		}
		after, err := readCounters(ctx, b.pool)
		if err != nil {
			return err
		}
		row.PerApplication = perApplication(after.sub(before), row.Created)
		phase.Rows = append(phase.Rows, row)
		phase.Knee = kneeOf(phase.Rows)
		b.logf("e2e %4.0f/s: %d/%d created, submit→201 p50 %.1f p99 %.1f ms, submit→SMTP p50 %.1f p99 %.1f max %.1f ms, %d missing; per application %.2f commits, %.2f inserts, %.2f updates",
			rate, row.Created, row.Sent, row.Submit.P50, row.Submit.P99, row.Delivery.P50, row.Delivery.P99, row.Delivery.Max, row.Missing,
			row.PerApplication.Commits, row.PerApplication.Inserts, row.PerApplication.Updates)
		if err := api.exited(); err != nil {
			return err
		}
	}
	return nil
}

type e2eRecord struct {
	intended, created time.Time
	id                string
}

func (b *bench) e2eRate(ctx context.Context, client *http.Client, baseURL string, worker *process, rate float64) (E2ERow, error) {
	row := E2ERow{Rate: rate, Seconds: b.opts.RateDuration.Seconds()}
	var mu sync.Mutex
	var records []e2eRecord
	var firstErr error
	row.Sent = openLoop(ctx, rate, b.opts.RateDuration, maxInFlight, func(ctx context.Context, intended time.Time) {
		id, err := b.post(ctx, client, baseURL, "e2e")
		done := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			row.Errors++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		records = append(records, e2eRecord{intended: intended, created: done, id: id})
	})
	if err := ctx.Err(); err != nil {
		return row, err
	}
	row.Created = len(records)
	if row.Created == 0 {
		return row, fmt.Errorf("no submit succeeded (%d errors, first: %v)", row.Errors, firstErr)
	}

	// Wait for every created application's email, as long as the run took
	// and at least 30 s.
	deadline := time.Now().Add(max(30*time.Second, b.opts.RateDuration))
	for {
		missing := 0
		for _, r := range records {
			if _, ok := b.sink.at(r.id); !ok {
				missing++
			}
		}
		row.Missing = missing
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		if err := worker.exited(); err != nil {
			return row, err
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return row, err
		}
	}

	submit := make([]time.Duration, 0, len(records))
	delivery := make([]time.Duration, 0, len(records))
	for _, r := range records {
		submit = append(submit, r.created.Sub(r.intended))
		if at, ok := b.sink.at(r.id); ok {
			delivery = append(delivery, at.Sub(r.intended))
		}
	}
	row.Delivered = len(delivery)
	row.Submit = summarize(submit)
	row.Delivery = summarize(delivery)
	return row, nil
}

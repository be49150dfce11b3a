package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// overloadPhase submits at a rate above what the system can take (open
// loop, with a worker running) and checks that the API sheds instead of
// queueing: every request answered soon (201, or 503/429 with
// Retry-After), the API's memory bounded, every accepted application
// stored and its email sent once the load stops.
func (b *bench) overloadPhase(ctx context.Context) error {
	rate, fromKnee := b.overloadRate()
	phase := &OverloadPhase{Rate: rate, FromKnee: fromKnee, Seconds: b.opts.OverloadDuration.Seconds(), Codes: map[string]int{}}
	b.report.Overload = phase
	b.sink.reset()
	api, baseURL, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	var worker *process // stopAll skips it if it did not start
	defer func() { phase.Peak = stopAll(phaseOverload, api, worker) }()
	if worker, err = b.startWorker(ctx); err != nil {
		return err
	}
	inFlight := max(maxInFlight, int(2*rate))
	client := newHTTPClient(inFlight)
	defer client.CloseIdleConnections()

	var mu sync.Mutex
	var answers []time.Duration
	var accepted []string
	phase.Sent = openLoop(ctx, rate, b.opts.OverloadDuration, inFlight, func(ctx context.Context, intended time.Time) {
		res, err := b.submit(ctx, client, baseURL, "overload")
		took := time.Since(intended)
		mu.Lock()
		defer mu.Unlock()
		answers = append(answers, took)
		if took > time.Second {
			phase.OverOneSecond++
		}
		switch {
		case err != nil:
			phase.Codes["error"]++
			if phase.FirstError == "" {
				phase.FirstError = err.Error()
			}
			return
		case res.status == http.StatusCreated:
			accepted = append(accepted, res.id)
		case (res.status == http.StatusServiceUnavailable || res.status == http.StatusTooManyRequests) && res.retryAfter == "":
			phase.ShedWithoutRetryAfter++
		}
		phase.Codes[strconv.Itoa(res.status)]++
	})
	loadEnd := time.Now()
	if err := ctx.Err(); err != nil {
		return err
	}
	phase.Answer = summarize(answers)
	phase.Accepted = len(accepted)
	phase.APIPeakMiB = round(api.rss.peak(), 1)
	b.logf("overload %.0f/s: %d sent, codes %v, answer p99 %.1f max %.1f ms, %d over 1 s, API peak %.1f MiB",
		rate, phase.Sent, phase.Codes, phase.Answer.P99, phase.Answer.Max, phase.OverOneSecond, phase.APIPeakMiB)
	if err := api.exited(); err != nil {
		return err
	}

	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM applications").Scan(&phase.Stored); err != nil {
		return err
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::uuid[]) AS a(id)
		WHERE NOT EXISTS (SELECT 1 FROM applications WHERE applications.id = a.id)`, accepted).Scan(&phase.AcceptedMissing); err != nil {
		return err
	}

	// The backlog the overload left: every accepted application's email.
	deadline := loadEnd.Add(b.opts.DrainTimeout)
	for {
		waiting, last := 0, loadEnd
		for _, id := range accepted {
			at, ok := b.sink.at(id)
			if !ok {
				waiting++
			} else if at.After(last) {
				last = at
			}
		}
		phase.Undelivered = waiting
		phase.DrainSeconds = round(last.Sub(loadEnd).Seconds(), 2)
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d accepted applications without an email %s after the load", waiting, b.opts.DrainTimeout)
		}
		if err := worker.exited(); err != nil {
			return err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	b.logf("overload: %d accepted, %d stored, %d accepted but not stored; emails drained %.1f s after the load",
		phase.Accepted, phase.Stored, phase.AcceptedMissing, phase.DrainSeconds)
	return nil
}

// overloadRate is --overload-rate, or when that is 0 twice the knee the e2e
// phase found in this run (fromKnee), or 2000 a second when it found none.
func (b *bench) overloadRate() (rate float64, fromKnee bool) {
	if b.opts.OverloadRate > 0 {
		return b.opts.OverloadRate, false
	}
	if e := b.report.E2E; e != nil && e.Knee > 0 {
		return 2 * e.Knee, true
	}
	return 2000, false
}

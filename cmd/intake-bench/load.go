package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// summarize returns the percentiles of ds (nearest rank).
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	return Latency{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1])}
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// closedLoop runs do from workers goroutines back to back for warmup plus
// dur. Requests that start during the warm-up are not counted; the rate is
// the counted requests over the time from the end of the warm-up to the
// last one's completion. The run goes on past dur until one request has
// been counted: on a loaded machine a stall can outlast a short window,
// and an empty run measures nothing.
func closedLoop(ctx context.Context, workers int, warmup, dur time.Duration, do func(ctx context.Context) error) Throughput {
	type result struct {
		lat      []time.Duration
		errs     int
		firstErr error
		last     time.Time
	}
	start := time.Now()
	from := start.Add(warmup)
	end := from.Add(dur)
	results := make([]result, workers)
	var counted atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := &results[w]
			r.lat = make([]time.Duration, 0, 1024)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) && counted.Load() {
					return
				}
				err := do(ctx)
				t1 := time.Now()
				if t0.Before(from) {
					continue
				}
				counted.Store(true)
				r.last = t1
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					r.errs++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.lat = append(r.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()

	t := Throughput{Concurrency: workers}
	var all []time.Duration
	last := from
	for _, r := range results {
		all = append(all, r.lat...)
		t.Errors += r.errs
		if r.firstErr != nil && t.FirstError == "" {
			t.FirstError = r.firstErr.Error()
		}
		if r.last.After(last) {
			last = r.last
		}
	}
	t.Requests = len(all)
	t.Seconds = round(last.Sub(from).Seconds(), 3)
	t.PerSecond = round(div(float64(t.Requests), last.Sub(from).Seconds()), 1)
	t.Latency = summarize(all)
	return t
}

// openLoop calls do at rate per second for dur, each call in its own
// goroutine, whatever the previous calls are doing: the schedule never
// waits for the system under test. Each call gets its intended start time,
// so latencies measured from it include any delay in starting the call
// (no coordinated omission). At most maxInFlight calls run at once; past
// that, starting waits (and the wait shows in the latencies). It returns
// how many calls it started, after all of them have returned.
func openLoop(ctx context.Context, rate float64, dur time.Duration, maxInFlight int, do func(ctx context.Context, intended time.Time)) int {
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	start := time.Now()
	n := 0
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= dur {
			break
		}
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				wg.Wait()
				return n
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return n
		}
		n++
		wg.Go(func() {
			defer func() { <-sem }()
			do(ctx, at)
		})
	}
	wg.Wait()
	return n
}

package job

import (
	"math/rand/v2"
	"time"

	"github.com/intake/intake/internal/config"
)

// RetrySchedule is the backoff both job kinds use: the delay doubles from
// Base up to Max, with ±10% jitter so a recovering server is not hit by
// every job at once, and jobs keep retrying for at least For.
type RetrySchedule struct {
	Base, Max, For time.Duration
}

// RetryFromConfig is the schedule the configuration asks for.
func RetryFromConfig(cfg config.Config) RetrySchedule {
	return RetrySchedule{Base: cfg.RetryBase, Max: cfg.RetryMax, For: cfg.RetryFor}
}

// Delay is the wait before retry number attempt (1-based), without jitter.
func (s RetrySchedule) Delay(attempt int) time.Duration {
	d := s.Base
	for i := 1; i < attempt && d < s.Max; i++ {
		d *= 2
	}
	return min(d, s.Max)
}

// MaxAttempts is the smallest attempt count whose retries span For, so a
// failure is given up only after at least For (jitter aside).
func (s RetrySchedule) MaxAttempts() int {
	var total time.Duration
	attempts := 1
	for total < s.For {
		total += s.Delay(attempts)
		attempts++
	}
	return attempts
}

// next is when to retry after the given failed attempt.
func (s RetrySchedule) next(now time.Time, attempt int) time.Time {
	d := s.Delay(attempt)
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return now.Add(d + jitter)
}

package job

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/testkit"
)

// defaultSchedule is the schedule a worker gets with no retry variables set.
func defaultSchedule(t *testing.T) RetrySchedule {
	t.Helper()
	cfg := testkit.DefaultConfig(t)
	return RetrySchedule{Base: cfg.RetryBase, Max: cfg.RetryMax, For: cfg.RetryFor}
}

// span is the total wait before retries 1..n, jitter aside.
func span(s RetrySchedule, n int) time.Duration {
	var total time.Duration
	for a := 1; a <= n; a++ {
		total += s.Delay(a)
	}
	return total
}

func TestRetryScheduleDelay(t *testing.T) {
	t.Parallel()
	s := RetrySchedule{Base: 10 * time.Second, Max: 30 * time.Minute, For: 72 * time.Hour}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, 10 * time.Second},
		{2, 20 * time.Second},
		{3, 40 * time.Second},
		{4, 80 * time.Second},
		{5, 160 * time.Second},
		{6, 320 * time.Second},
		{7, 640 * time.Second},
		{8, 1280 * time.Second},
		{9, 30 * time.Minute}, // 2560s capped
		{10, 30 * time.Minute},
		{151, 30 * time.Minute},
		{10_000, 30 * time.Minute}, // no overflow however many attempts
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, s.Delay(tt.attempt), "Delay(%d)", tt.attempt)
	}
}

var schedules = []RetrySchedule{
	{Base: 10 * time.Second, Max: 30 * time.Minute, For: 72 * time.Hour},
	{Base: time.Second, Max: 4 * time.Second, For: 10 * time.Second},
	{Base: time.Second, Max: time.Hour, For: 7 * time.Second},    // For is exactly Delay(1)+Delay(2)+Delay(3)
	{Base: time.Minute, Max: time.Minute, For: 90 * time.Minute}, // Base == Max: constant
	{Base: time.Hour, Max: 2 * time.Hour, For: time.Second},      // For shorter than Base
	{Base: 3 * time.Millisecond, Max: 24 * time.Hour, For: 365 * 24 * time.Hour},
	{Base: 10 * time.Second, Max: 30 * time.Minute, For: 48 * time.Hour},
}

func TestRetryScheduleDelayDoublesAndCaps(t *testing.T) {
	t.Parallel()
	for _, s := range schedules {
		require.Equal(t, min(s.Base, s.Max), s.Delay(1), "%+v: first delay", s)
		for a := 1; a < 300; a++ {
			require.Equal(t, min(2*s.Delay(a), s.Max), s.Delay(a+1), "%+v: Delay(%d) after %v", s, a+1, s.Delay(a))
			require.LessOrEqual(t, s.Delay(a+1), s.Max)
		}
	}
}

func TestRetryScheduleMaxAttemptsCoversFor(t *testing.T) {
	t.Parallel()
	for _, s := range schedules {
		n := s.MaxAttempts()
		require.GreaterOrEqual(t, n, 2, "%+v: at least one retry", s)
		// The retries after attempts 1..n-1 span For; one attempt fewer
		// would not: MaxAttempts is the smallest count that covers it.
		require.GreaterOrEqual(t, span(s, n-1), s.For, "%+v: %d attempts give up before For", s, n)
		require.Less(t, span(s, n-2), s.For, "%+v: %d attempts is more than needed", s, n)
	}

	// Hand-checked: delays 1s, 2s, 4s, 4s sum to 11s, the first sum >= 10s.
	require.Equal(t, 5, RetrySchedule{Base: time.Second, Max: 4 * time.Second, For: 10 * time.Second}.MaxAttempts())
	// 1s+2s+4s is exactly 7s.
	require.Equal(t, 4, RetrySchedule{Base: time.Second, Max: time.Hour, For: 7 * time.Second}.MaxAttempts())
	// 90 one-minute retries.
	require.Equal(t, 91, RetrySchedule{Base: time.Minute, Max: time.Minute, For: 90 * time.Minute}.MaxAttempts())
}

func TestRetryScheduleDefaults(t *testing.T) {
	t.Parallel()
	s := defaultSchedule(t)
	require.Equal(t, RetrySchedule{Base: 10 * time.Second, Max: 30 * time.Minute, For: 72 * time.Hour}, s)

	n := s.MaxAttempts()
	var b strings.Builder
	var total time.Duration
	for a := 1; a < n; a++ {
		total += s.Delay(a)
		if a <= 9 || a == n-1 {
			fmt.Fprintf(&b, "\n  after attempt %3d: wait %-6v (retrying for %v so far)", a, s.Delay(a), total)
		} else if a == 10 {
			fmt.Fprintf(&b, "\n  ... every %v ...", s.Max)
		}
	}
	t.Logf("default schedule (Base %v, Max %v, For %v): MaxAttempts %d%s", s.Base, s.Max, s.For, n, b.String())

	require.Equal(t, 152, n, "8 doubling delays (42m30s) then 143 of 30m reach 72h")
	require.GreaterOrEqual(t, total, 72*time.Hour)
}

// The requirement: with the defaults, an analytics job keeps
// retrying for at least 48 hours (a sink offline for a day loses nothing),
// even when every retry draws the shortest jitter.
func TestAnalyticsRetryWindowAtLeast48h(t *testing.T) {
	t.Parallel()
	s := defaultSchedule(t)
	n := s.MaxAttempts()

	// The analytics job as the relay inserts it for the http sink, with the
	// relay's MaxAttempts.
	params := ForEvent(eventForTest(), n)
	var analytics *river.InsertOpts
	for _, p := range params {
		if p.Args.Kind() == (AnalyticsEventArgs{}).Kind() {
			analytics = p.InsertOpts
		}
	}
	require.NotNil(t, analytics)
	require.Equal(t, n, analytics.MaxAttempts)

	// Worst case: every retry 10% early.
	shortest := time.Duration(0.9 * float64(span(s, analytics.MaxAttempts-1)))
	t.Logf("analytics retry window with the defaults: %v nominal, at least %v with jitter", span(s, n-1), shortest)
	require.GreaterOrEqual(t, shortest, 48*time.Hour)

	// And the worker's own NextRetry, attempt by attempt, as River calls it.
	w := &AnalyticsEventWorker{Retry: s}
	var window time.Duration
	for a := 1; a < analytics.MaxAttempts; a++ {
		before := time.Now()
		next := w.NextRetry(&river.Job[AnalyticsEventArgs]{JobRow: &rivertype.JobRow{Attempt: a}})
		window += next.Sub(before)
	}
	t.Logf("one simulated run of NextRetry: %v", window)
	require.GreaterOrEqual(t, window, 48*time.Hour)
}

func TestRetryNextJitter(t *testing.T) {
	t.Parallel()
	s := defaultSchedule(t)
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for a := 1; a <= 12; a++ {
		d := s.Delay(a)
		lo, hi := now.Add(d-d/10), now.Add(d+d/10)
		seen := map[time.Time]bool{}
		for range 200 {
			at := s.next(now, a)
			require.False(t, at.Before(lo), "attempt %d: retry at +%v, before -10%% of %v", a, at.Sub(now), d)
			require.False(t, at.After(hi), "attempt %d: retry at +%v, after +10%% of %v", a, at.Sub(now), d)
			seen[at] = true
		}
		require.Greater(t, len(seen), 100, "attempt %d: no jitter", a)
	}
}

func eventForTest() application.Event {
	return application.Event{
		ID:            "0196a1f0-0000-7000-8000-000000000001",
		Kind:          application.EventSubmitted,
		ApplicationID: "0196a1f0-0000-7000-8000-000000000002",
		PostingSlug:   "engineer",
		OccurredAt:    time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC),
	}
}

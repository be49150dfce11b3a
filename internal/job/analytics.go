package job

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/analytics"
)

// AnalyticsEventWorker records one event in the analytics sink. The sink
// deduplicates on the event id, so running twice records once.
type AnalyticsEventWorker struct {
	river.WorkerDefaults[AnalyticsEventArgs]
	Sink       analytics.Sink
	Retry      RetrySchedule
	JobTimeout time.Duration
	// Metrics counts each record's result (nil: none).
	Metrics *Metrics
}

func (w *AnalyticsEventWorker) Work(ctx context.Context, job *river.Job[AnalyticsEventArgs]) error {
	err := w.Sink.Record(ctx, job.Args.event())
	w.Metrics.AnalyticsRecord(err, job.Args.OccurredAt)
	if errors.Is(err, analytics.ErrPermanent) {
		return river.JobCancel(err)
	}
	return err
}

func (w *AnalyticsEventWorker) NextRetry(job *river.Job[AnalyticsEventArgs]) time.Time {
	return w.Retry.next(time.Now(), job.Attempt)
}

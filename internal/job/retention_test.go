package job_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/job"
)

// The retention job reads its clock, not the wall's: a week and a day
// later by that clock the dispatched event is gone and its application
// stays.
func TestOutboxRetentionWorkerUsesItsClock(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	ctx := t.Context()
	_, err := b.pool.Exec(ctx, `UPDATE outbox_events SET dispatched_at = now()`)
	require.NoError(t, err)
	now := time.Now()
	w := &job.OutboxRetentionWorker{Store: b.store, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now }, Retention: 7 * 24 * time.Hour}

	require.NoError(t, w.Work(ctx, &river.Job[job.OutboxRetentionArgs]{}))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox_events`), "dispatched just now: kept")
	now = now.Add(8 * 24 * time.Hour)
	require.NoError(t, w.Work(ctx, &river.Job[job.OutboxRetentionArgs]{}))
	require.Zero(t, b.count(t, `SELECT count(*) FROM outbox_events`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM applications`))
}

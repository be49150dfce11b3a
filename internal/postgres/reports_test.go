package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// The weekly report's build over a busy week, and application retention
// erasing that week (batches of 100) while submits run: the build's time,
// the erasure's rate, and the submits' p99 with and without retention.
// The figures are logged (see the README's Performance section).
func TestApplicationRetentionDoesNotBlockSubmits(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 20,000 applications")
	}
	t.Parallel()
	const apps, submits, concurrency = 20_000, 2000, 8
	b := setupSubmit(t)
	ctx := t.Context()
	testkit.Seed(t, b.pool, b.slug, apps)
	week := application.WeekOf(time.Now().AddDate(0, 0, -40))
	_, err := b.pool.Exec(ctx, `UPDATE postings SET created_at = $1`, week.Start())
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE applications SET received_at = $1::timestamptz + random() * interval '7 days'`, week.Start())
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO deliveries (application_id, state, sent_at) SELECT id, 'sent', received_at + random() * interval '2 seconds' FROM applications`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `VACUUM ANALYZE applications, deliveries, outbox_events`)
	require.NoError(t, err)

	start := time.Now()
	r, err := b.store.BuildReport(ctx, week, time.Now())
	build := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, apps, r.Totals.Received)
	require.Equal(t, apps, r.Totals.ConfirmationsSent)

	baseline := submitP99(t, b, submits, concurrency)
	done := make(chan struct{})
	var erased int
	var took time.Duration
	go func() {
		defer close(done)
		start := time.Now()
		erased, err = b.store.EraseReceivedBefore(context.Background(), access.Caller{Actor: access.ActorSystem},
			time.Now().AddDate(0, 0, -30), 100, "retention")
		took = time.Since(start)
	}()
	during := submitP99(t, b, submits, concurrency)
	<-done
	require.NoError(t, err)
	require.Equal(t, apps, erased)
	t.Logf("report build over %d applications of a week: %s; retention erased %d applications in %s (%.0f/s); submit p99 (%d submits, %d at once): %s without retention, %s while it ran",
		apps, build.Round(time.Millisecond), erased, took.Round(time.Millisecond), float64(erased)/took.Seconds(),
		submits, concurrency, baseline.Round(100*time.Microsecond), during.Round(100*time.Microsecond))
	require.Less(t, during, baseline*5+50*time.Millisecond, "retention must not hold submits up")
}

// The report email's fence: one live attempt at a time, only the lease's
// attempt records, nothing starts once it is recorded; a failed attempt
// gives the lease back.
func TestReportEmailFence(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	week := application.WeekOf(time.Now()).Previous()
	r, err := b.store.BuildReport(ctx, week, time.Now())
	require.NoError(t, err)
	stored, err := b.store.SaveReport(ctx, r)
	require.NoError(t, err)
	require.True(t, stored.Stored)
	require.Nil(t, stored.EmailedAt)
	again, err := b.store.SaveReport(ctx, application.Report{Week: r.Week, BuiltAt: time.Now(), Postings: []application.PostingFigures{}})
	require.NoError(t, err)
	require.Equal(t, stored.BuiltAt, again.BuiltAt, "the first stored report stays")

	first, err := b.store.ReportEmailStart(ctx, r.Week, time.Minute)
	require.NoError(t, err)
	var held *postgres.LeaseHeldError
	_, err = b.store.ReportEmailStart(ctx, r.Week, time.Minute)
	require.ErrorAs(t, err, &held)
	require.Greater(t, held.Left, 50*time.Second)

	require.NoError(t, b.store.ReportEmailUnsent(ctx, r.Week, first))
	second, err := b.store.ReportEmailStart(ctx, r.Week, time.Minute)
	require.NoError(t, err)
	require.Equal(t, first+1, second)
	noop := func(context.Context, pgx.Tx) error { return nil }
	require.ErrorIs(t, b.store.ReportEmailed(ctx, r.Week, first, noop), postgres.ErrLeaseLost, "an old attempt records nothing")
	require.NoError(t, b.store.ReportEmailed(ctx, r.Week, second, noop))
	_, err = b.store.ReportEmailStart(ctx, r.Week, time.Minute)
	require.ErrorIs(t, err, postgres.ErrAlreadySent)
	require.ErrorIs(t, b.store.ReportEmailed(ctx, r.Week, second, noop), postgres.ErrLeaseLost, "recorded once")
	emailed, err := b.store.StoredReport(ctx, week)
	require.NoError(t, err)
	require.NotNil(t, emailed.EmailedAt)
}

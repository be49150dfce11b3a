package job_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// reportBundle is a database with postings created long before the seeded
// week, a real SMTP server, and a River client to run report jobs with.
type reportBundle struct {
	pool  *pgxpool.Pool
	store *postgres.Store
	river *river.Client[pgx.Tx]
	smtp  *testkit.SMTPServer
	week  application.Week
}

func setupReport(t *testing.T) *reportBundle {
	t.Helper()
	pool, _ := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	for _, slug := range []string{"engineer", "designer"} {
		_, err := store.CreatePosting(t.Context(), application.NewPosting{Slug: slug, Title: slug})
		require.NoError(t, err)
	}
	_, err := pool.Exec(t.Context(), `UPDATE postings SET created_at = '2026-01-01T00:00:00Z'`)
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	week, err := application.ParseWeek("2026-W40")
	require.NoError(t, err)
	return &reportBundle{pool: pool, store: store, river: client, smtp: testkit.StartSMTP(t), week: week}
}

// app inserts one application to slug received at, with its event, as
// the submit path leaves it, and returns its id.
func (b *reportBundle) app(t *testing.T, slug, email string, at time.Time) string {
	t.Helper()
	var id string
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		WITH a AS (
			INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
			SELECT gen_random_uuid(), id, 'Applicant', $2, $2, $3 FROM postings WHERE slug = $1
			RETURNING id
		), e AS (
			INSERT INTO outbox_events (id, kind, aggregate_id, payload, created_at)
			SELECT gen_random_uuid(), 'application.submitted', a.id, jsonb_build_object('application_id', a.id), $3 FROM a
		)
		SELECT id::text FROM a`, slug, email, at).Scan(&id))
	return id
}

func (b *reportBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), sql, args...)
	require.NoError(t, err)
}

// delivery sets id's ledger state; a sent one was accepted after seconds.
func (b *reportBundle) delivery(t *testing.T, id, state string, seconds int) {
	t.Helper()
	b.exec(t, `
		INSERT INTO deliveries (application_id, state, sent_at)
		SELECT id, $2, CASE WHEN $2 = 'sent' THEN received_at + make_interval(secs => $3) END
		FROM applications WHERE id = $1`, id, state, seconds)
}

func (b *reportBundle) analytics(t *testing.T, id, slug string) {
	t.Helper()
	b.exec(t, `
		INSERT INTO analytics_events (event_id, kind, application_id, posting_slug, occurred_at)
		SELECT e.id, e.kind, e.aggregate_id, $2, e.created_at FROM outbox_events e WHERE e.aggregate_id = $1`, id, slug)
}

// seedWeek fills the bundle's week: engineer has 5 applications (3 sent
// after 10, 20 and 40 s, 1 retrying, 1 failed; 3 analytics records);
// designer has 1 pending, and 1 received the week before and erased during
// this one. An application of the week after counts nowhere.
func (b *reportBundle) seedWeek(t *testing.T) {
	t.Helper()
	at := b.week.Start().Add(time.Hour)
	for i, state := range []string{"sent", "sent", "sent", "retrying", "failed"} {
		id := b.app(t, "engineer", "e"+string(rune('a'+i))+"@example.com", at.Add(time.Duration(i)*24*time.Hour))
		b.delivery(t, id, state, []int{10, 40, 20, 0, 0}[i])
		if state == "sent" {
			b.analytics(t, id, "engineer")
		}
	}
	b.app(t, "designer", "d1@example.com", b.week.End().Add(-time.Second))
	old := b.app(t, "designer", "d2@example.com", b.week.Start().Add(-time.Hour))
	b.exec(t, `UPDATE applications SET erased_at = $2 WHERE id = $1`, old, b.week.Start().Add(48*time.Hour))
	b.app(t, "engineer", "late@example.com", b.week.End())
}

func (b *reportBundle) worker(t *testing.T, to []string, now time.Time) *job.WeeklyReportWorker {
	return &job.WeeklyReportWorker{
		Store: b.store, Sender: newSender(t, b.smtp, 5*time.Second), Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now }, To: to, Employer: application.Employer{Name: "Acme"},
		Lease: 30 * time.Second, RecordWithin: 10 * time.Second,
	}
}

// runningJob inserts a report job for the week as River holds one a
// worker fetched (running, first attempt), without its unique key, so a
// test can run the same week as often as it likes.
func (b *reportBundle) runningJob(t *testing.T) *river.Job[job.WeeklyReportArgs] {
	t.Helper()
	args := job.WeeklyReportArgs{Week: b.week.String()}
	var id int64
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, attempted_at, priority)
		VALUES (jsonb_build_object('week', $1::text), 'weekly_report', 5, 'maintenance', 'running', 1, now(), 1)
		RETURNING id`, args.Week).Scan(&id))
	row, err := b.river.JobGet(t.Context(), id)
	require.NoError(t, err)
	return &river.Job[job.WeeklyReportArgs]{JobRow: row, Args: args}
}

func (b *reportBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

func ptr(f float64) *float64 { return &f }

// The figures of a seeded week: every count, the percentiles from the
// delivery ledger, the erasure counted in the week it was made.
func TestReportFigures(t *testing.T) {
	t.Parallel()
	b := setupReport(t)
	b.seedWeek(t)
	r, err := b.store.BuildReport(t.Context(), b.week, b.week.End().Add(time.Hour))
	require.NoError(t, err)

	require.Equal(t, "2026-W40", r.Week)
	require.True(t, r.Final)
	require.Equal(t, time.Date(2026, 9, 28, 0, 0, 0, 0, time.UTC), r.From)
	engineer := application.ReportFigures{Received: 5, ConfirmationsSent: 3, ConfirmationsRetrying: 1, ConfirmationsFailed: 1,
		AnalyticsRecorded: 3, EmailAcceptedP50: ptr(20), EmailAcceptedP95: ptr(38)}
	designer := application.ReportFigures{Received: 1, ConfirmationsPending: 1, Erasures: 1}
	require.Equal(t, []application.PostingFigures{
		{Slug: "designer", ReportFigures: designer},
		{Slug: "engineer", ReportFigures: engineer},
	}, r.Postings)
	require.Equal(t, application.ReportFigures{Received: 6, ConfirmationsSent: 3, ConfirmationsRetrying: 1, ConfirmationsFailed: 1,
		ConfirmationsPending: 1, AnalyticsRecorded: 3, EmailAcceptedP50: ptr(20), EmailAcceptedP95: ptr(38), Erasures: 1}, r.Totals)

	preview, err := b.store.BuildReport(t.Context(), b.week, b.week.End().Add(-time.Minute))
	require.NoError(t, err)
	require.False(t, preview.Final, "built before the week's end")
}

// Two workers run the same week's report at once, then a third runs it
// again: one row, one email, with the week's Message-ID and no personal
// data; the repeated run changes nothing.
func TestReportRunsOnceAndEmailsOnce(t *testing.T) {
	t.Parallel()
	b := setupReport(t)
	b.seedWeek(t)
	b.smtp.SetDelay(200 * time.Millisecond) // both runs meet while the first is in DATA
	w := b.worker(t, []string{"ops@example.com", "lead@example.com"}, b.week.End().Add(time.Hour))

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		j := b.runningJob(t)
		wg.Go(func() { errs[i] = w.Work(rivertest.WorkContext(context.Background(), b.river), j) })
	}
	wg.Wait()
	// One of them may have found the other's lease live and snoozed.
	for _, err := range errs {
		if err != nil {
			var snooze *rivertype.JobSnoozeError
			require.ErrorAs(t, err, &snooze)
		}
	}
	require.NoError(t, w.Work(rivertest.WorkContext(t.Context(), b.river), b.runningJob(t)))

	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reports`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reports WHERE week = '2026-W40' AND emailed_at IS NOT NULL AND email_attempts = 1`))
	msgs := b.smtp.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "report.2026-W40@intake.test", msgs[0].MessageID)
	require.ElementsMatch(t, []string{"ops@example.com", "lead@example.com"}, msgs[0].To)
	require.Contains(t, string(msgs[0].Raw), "engineer")
	for _, personal := range []string{"ea@example.com", "d1@example.com", "Applicant"} {
		require.NotContains(t, string(msgs[0].Raw), personal)
	}

	// Figures that change later do not change the stored report.
	b.app(t, "engineer", "again@example.com", b.week.Start().Add(time.Minute))
	require.NoError(t, w.Work(rivertest.WorkContext(t.Context(), b.river), b.runningJob(t)))
	stored, err := b.store.StoredReport(t.Context(), b.week)
	require.NoError(t, err)
	require.Equal(t, 6, stored.Totals.Received)
	require.Len(t, b.smtp.Messages(), 1)
}

// Without recipients the report is stored, not emailed; a week not over
// is never stored.
func TestReportStoredOnlyAndNotBeforeTheWeekEnds(t *testing.T) {
	t.Parallel()
	b := setupReport(t)
	b.seedWeek(t)
	err := b.worker(t, nil, b.week.End().Add(-time.Second)).Work(rivertest.WorkContext(t.Context(), b.river), b.runningJob(t))
	require.ErrorContains(t, err, "not over")
	require.Zero(t, b.count(t, `SELECT count(*) FROM reports`))

	require.NoError(t, b.worker(t, nil, b.week.End()).Work(rivertest.WorkContext(t.Context(), b.river), b.runningJob(t)))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reports WHERE emailed_at IS NULL`))
	require.Empty(t, b.smtp.Messages())
}

// A failed send gives the lease back: the retry sends it, once.
func TestReportEmailRetriedAfterATemporaryFailure(t *testing.T) {
	t.Parallel()
	b := setupReport(t)
	w := b.worker(t, []string{"ops@example.com"}, b.week.End())
	b.smtp.Stop()
	require.Error(t, w.Work(rivertest.WorkContext(t.Context(), b.river), b.runningJob(t)))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reports WHERE emailed_at IS NULL AND email_lease_expires_at IS NULL`))
	b.smtp.Start()
	require.NoError(t, w.Work(rivertest.WorkContext(t.Context(), b.river), b.runningJob(t)))
	require.Len(t, b.smtp.Messages(), 1)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reports WHERE emailed_at IS NOT NULL AND email_attempts = 2`))
}

package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/postgres"
)

// ReportInterval is how often the leader asks for the report of the week
// that ended last: hourly, so a report missed while no worker ran (or
// whose email failed) is made within the hour after one is back. Every run
// after the first finds the stored row and does nothing.
const ReportInterval = time.Hour

// WeeklyReportArgs asks for the report of one ISO week (2026-W48).
type WeeklyReportArgs struct {
	Week string `json:"week"`
}

func (WeeklyReportArgs) Kind() string { return "weekly_report" }

// InsertOpts make the job unique by its week: while one for a week is
// waiting, running, retrying or completed (until River's cleaner deletes
// it), inserting another is a no-op, whatever the number of workers or
// leaders that ask. The reports row is the lasting guard.
func (WeeklyReportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// reportPeriodic asks, every ReportInterval and when a leader starts, for
// the report of the week before now's.
func reportPeriodic(now func() time.Time) *river.PeriodicJob {
	return river.NewPeriodicJob(
		river.PeriodicInterval(ReportInterval),
		func() (river.JobArgs, *river.InsertOpts) {
			return WeeklyReportArgs{Week: application.WeekOf(now()).Previous().String()}, nil
		},
		&river.PeriodicJobOpts{ID: WeeklyReportArgs{}.Kind(), RunOnStart: true},
	)
}

// errWeekNotOver: a report is stored only once its week is over.
var errWeekNotOver = errors.New("the week is not over; its report is not stored yet")

// WeeklyReportWorker builds, stores and emails one week's report, once.
// The reports row, keyed by the week, is inserted only if missing, so
// concurrent or repeated runs all read the first one that committed. Its
// email is fenced like the confirmation (ConfirmationEmailWorker): an
// attempt takes the row's lease, the send ends RecordWithin before the
// lease does, and only the lease's attempt may set emailed_at, in the
// transaction that completes the job. So two sends never overlap and a
// run after emailed_at sends nothing: a second copy can only come from an
// attempt whose worker died (or lost the database for the rest of its
// lease) between the SMTP server's acceptance and that commit, and it
// carries the same Message-ID (report.<week>@domain).
type WeeklyReportWorker struct {
	river.WorkerDefaults[WeeklyReportArgs]
	Store  *postgres.Store
	Sender *mail.Sender
	Logger *slog.Logger
	Now    func() time.Time
	// To are the report's recipients (INTAKE_REPORT_TO); none: stored only.
	To []string
	// Employer signs the email.
	Employer application.Employer
	// Lease and RecordWithin: as ConfirmationEmailWorker's.
	Lease        time.Duration
	RecordWithin time.Duration
}

func (w *WeeklyReportWorker) Work(ctx context.Context, job *river.Job[WeeklyReportArgs]) error {
	week, err := application.ParseWeek(job.Args.Week)
	if err != nil {
		return river.JobCancel(err)
	}
	now := w.Now()
	if now.Before(week.End()) {
		return river.JobCancel(errWeekNotOver)
	}
	report, err := w.Store.StoredReport(ctx, week)
	if errors.Is(err, application.ErrNotFound) {
		var built application.Report
		if built, err = w.Store.BuildReport(ctx, week, now); err != nil {
			return err
		}
		if report, err = w.Store.SaveReport(ctx, built); err != nil {
			return err
		}
		w.Logger.InfoContext(ctx, "weekly report stored", "week", report.Week, "received", report.Totals.Received)
	}
	if err != nil {
		return err
	}
	if len(w.To) == 0 || report.EmailedAt != nil {
		return nil
	}
	return w.email(ctx, job, report.Report)
}

func (w *WeeklyReportWorker) email(ctx context.Context, job *river.Job[WeeklyReportArgs], report application.Report) error {
	msg, err := mail.Report(report, w.Employer, w.To, w.Sender.Domain())
	if err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	// As in ConfirmationEmailWorker.Work: the local clock is read before
	// the database takes the lease, so the deadlines fall within it.
	sendBy, leaseEnd := sendWindow(ctx, w.Lease, w.RecordWithin)
	attempt, err := w.Store.ReportEmailStart(ctx, report.Week, time.Until(leaseEnd))
	var held *postgres.LeaseHeldError
	switch {
	case errors.Is(err, postgres.ErrAlreadySent):
		return nil
	case errors.As(err, &held):
		return river.JobSnooze(held.Left + 100*time.Millisecond)
	case err != nil:
		return err
	}

	// The send and its record outlive a shutdown for the reason the
	// confirmation's do: a send cut after its final dot would be sent
	// again by a worker that never died.
	sendCtx, cancelSend := context.WithDeadline(context.WithoutCancel(ctx), sendBy)
	sendErr := w.Sender.Send(sendCtx, msg)
	cancelSend()
	recordCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), leaseEnd)
	defer cancel()
	if sendErr != nil {
		err := w.Store.ReportEmailUnsent(recordCtx, report.Week, attempt)
		var failure *mail.Failure
		if errors.As(sendErr, &failure) && failure.Permanent {
			// Not retried; the next hourly run asks again.
			return errors.Join(river.JobCancel(sendErr), err)
		}
		return errors.Join(sendErr, err)
	}
	err = w.Store.ReportEmailed(recordCtx, report.Week, attempt, func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if errors.Is(err, postgres.ErrLeaseLost) {
		return river.JobCancel(errLeaseLost)
	}
	if err == nil {
		w.Logger.InfoContext(ctx, "weekly report emailed", "week", report.Week, "recipients", len(w.To))
	}
	return err
}

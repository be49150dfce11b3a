package job

import (
	"cmp"
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
)

// Settings tune the River client.
type Settings struct {
	// ClientID names this worker process in River (attempted_by, leader
	// election), the same id as its heartbeat, so an operator can tell
	// which process ran a job.
	ClientID             string
	EmailConcurrency     int
	AnalyticsConcurrency int
	// FetchCooldown is the least time between two fetches of one queue.
	// River's default (100 ms) caps a queue at MaxWorkers × 10 jobs/s, which
	// a backlog drain hits; a few milliseconds cost a few more small
	// queries and lift the cap.
	FetchCooldown time.Duration
	// FetchPollInterval is how often a queue polls when no insert
	// notification woke it (it bounds the delay of a missed notification).
	FetchPollInterval time.Duration
	// JobTimeout cancels a job's context after this long.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before River assumes
	// its worker died and makes it available again. River's default is an
	// hour. It is the backstop: a killed worker's jobs are rescued within
	// seconds from its stopped heartbeat (see Heartbeat); River's rescuer
	// catches the rest (a worker with no heartbeat row). It must exceed
	// JobTimeout, so a job that is merely slow has been cancelled by its
	// own timeout before anyone else picks it up.
	RescueAfter time.Duration
	// RecordTimeout is the part of an email attempt's lease kept for
	// recording its outcome (see ConfirmationEmailWorker).
	RecordTimeout time.Duration
	Retry         RetrySchedule
	// OutboxRetention is how long dispatched outbox events are kept (zero:
	// 7 days).
	OutboxRetention time.Duration
	// ReconcileInterval is how often the reconciler runs (zero: a minute);
	// ReconcileAfter how long a delivery or an event must have been stuck
	// before it counts (zero: 5 minutes).
	ReconcileInterval time.Duration
	ReconcileAfter    time.Duration
	// ReportTo are the weekly report's recipients (none: the report is
	// stored, not emailed).
	ReportTo []string
	// ApplicationRetention is how long applications are kept before the
	// leader erases them (zero: for ever).
	ApplicationRetention time.Duration
	// Now is the periodic jobs' clock (time.Now when nil).
	Now func() time.Time
}

// Deps are what the workers use.
type Deps struct {
	Store  *postgres.Store
	Sender *mail.Sender
	Sink   analytics.Sink
	Logger *slog.Logger
	// PublicURL and StatusTokens make the confirmation email's status link.
	PublicURL    *url.URL
	StatusTokens statustoken.Keys
	// Employer signs the confirmation email.
	Employer application.Employer
	// Metrics, when set, counts sends, analytics records and rescues.
	Metrics *Metrics
	// Heartbeat, when set, is this worker's (its Self.ID the client's
	// ClientID): it renews the email worker's delivery leases and rescues
	// dead workers' jobs (see Heartbeat). The caller runs it.
	Heartbeat *Heartbeat
}

// NewClient returns a River client that works both queues. Start it to
// work jobs; an unstarted client can still insert them.
func NewClient(pool *pgxpool.Pool, d Deps, s Settings) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &ConfirmationEmailWorker{
		Store:        d.Store,
		Sender:       d.Sender,
		Retry:        s.Retry,
		PublicURL:    d.PublicURL,
		StatusTokens: d.StatusTokens,
		Employer:     d.Employer,
		Lease:        s.JobTimeout + s.RecordTimeout,
		RecordWithin: s.RecordTimeout,
		Metrics:      d.Metrics,
		Heartbeat:    d.Heartbeat,
	})
	river.AddWorker(workers, &AnalyticsEventWorker{Sink: d.Sink, Retry: s.Retry, Metrics: d.Metrics})
	river.AddWorker(workers, &AbandonedDeliveriesWorker{Store: d.Store, Logger: d.Logger})
	now := s.Now
	if now == nil {
		now = time.Now
	}
	river.AddWorker(workers, &ReconcilerWorker{Store: d.Store, Logger: d.Logger, Now: now,
		After: cmp.Or(s.ReconcileAfter, 5*time.Minute), MaxAttempts: s.Retry.MaxAttempts()})
	river.AddWorker(workers, &OutboxRetentionWorker{Store: d.Store, Logger: d.Logger, Now: now,
		Retention: cmp.Or(s.OutboxRetention, 7*24*time.Hour)})
	river.AddWorker(workers, &IdempotencyExpiryWorker{Store: d.Store, Logger: d.Logger, Now: now})
	river.AddWorker(workers, &WeeklyReportWorker{Store: d.Store, Sender: d.Sender, Logger: d.Logger, Now: now,
		To: s.ReportTo, Employer: d.Employer, Lease: s.JobTimeout + s.RecordTimeout, RecordWithin: s.RecordTimeout})
	river.AddWorker(workers, &ApplicationRetentionWorker{Store: d.Store, Logger: d.Logger, Now: now,
		Retention: s.ApplicationRetention})
	periodicJobs := []*river.PeriodicJob{
		periodic(OutboxRetentionArgs{}, RetentionInterval),
		periodic(IdempotencyExpiryArgs{}, RetentionInterval),
		periodic(AbandonedDeliveriesArgs{}, AbandonedCheckInterval),
		periodic(ReconcilerArgs{}, cmp.Or(s.ReconcileInterval, time.Minute)),
		reportPeriodic(now),
	}
	if s.ApplicationRetention > 0 {
		periodicJobs = append(periodicJobs, periodic(ApplicationRetentionArgs{}, RetentionInterval))
	}
	var middleware []rivertype.Middleware
	if d.Metrics != nil {
		middleware = append(middleware, &rescueCounter{metrics: d.Metrics})
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:         s.ClientID,
		Middleware: middleware,
		Queues: map[string]river.QueueConfig{
			QueueEmail:     {MaxWorkers: s.EmailConcurrency, FetchCooldown: s.FetchCooldown},
			QueueAnalytics: {MaxWorkers: s.AnalyticsConcurrency, FetchCooldown: s.FetchCooldown},
			// Periodic checks: few and short, kept off the email queue.
			QueueMaintenance: {MaxWorkers: 2, FetchCooldown: s.FetchCooldown},
		},
		PeriodicJobs: periodicJobs,
		Workers:      workers,
		// The client's cooldown is also the least time between two insert
		// notifications for one queue (River's notify limiter), while the
		// queues above keep their own fetch cooldown. See
		// insertNotifyCooldown.
		FetchCooldown:        insertNotifyCooldown,
		FetchPollInterval:    s.FetchPollInterval,
		JobTimeout:           s.JobTimeout,
		RescueStuckJobsAfter: s.RescueAfter,
		MaxAttempts:          s.Retry.MaxAttempts(),
		ErrorHandler:         &errorHandler{logger: d.Logger},
		Logger:               d.Logger,

		// River's cleaner, set on purpose (see the constants).
		CompletedJobRetentionPeriod: CompletedJobRetention,
		CancelledJobRetentionPeriod: CancelledJobRetention,
		DiscardedJobRetentionPeriod: DiscardedJobRetention,
	})
}

// insertNotifyCooldown is the least time between two of this client's
// insert notifications for one queue. River sends at most one per client
// FetchCooldown; a relay round inserted within that time of the previous
// one then wakes no producer when it commits, and its jobs wait for the
// next round's notification or the fetch poll. At 1 ms (River's minimum)
// every round but back-to-back batches of a backlog notifies, so the poll
// is a fallback only and can be slow (Settings.FetchPollInterval), which
// is what keeps an idle worker cheap.
const insertNotifyCooldown = time.Millisecond

// periodic runs a job of args' kind on the leader every interval, and once
// when a leader starts, under the kind as its periodic id.
func periodic(args river.JobArgs, interval time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(
		river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return args, nil },
		&river.PeriodicJobOpts{ID: args.Kind(), RunOnStart: true},
	)
}

// errorHandler logs job failures with the job's id, kind and attempt. Job
// errors are built to carry no personal data (see mail.Failure), so the
// error text is safe to log.
type errorHandler struct{ logger *slog.Logger }

func (h *errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.logger.WarnContext(ctx, "job failed",
		"job_id", job.ID, "kind", job.Kind, "queue", job.Queue,
		"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", err)
	return nil
}

func (h *errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.logger.ErrorContext(ctx, "job panicked",
		"job_id", job.ID, "kind", job.Kind, "queue", job.Queue,
		"attempt", job.Attempt, "panic", panicVal, "stack", trace)
	return nil
}

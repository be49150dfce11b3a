package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/postgres"
)

// ConfirmationEmailWorker sends the confirmation email, at least once, with
// the delivery ledger preventing every duplicate but one: a worker dying
// between the SMTP server's acceptance and the ledger's commit.
type ConfirmationEmailWorker struct {
	river.WorkerDefaults[ConfirmationEmailArgs]
	Store  *postgres.Store
	Sender *mail.Sender
	Retry  RetrySchedule
	// RecordWithin bounds how long an accepted message's "sent" may take to
	// be recorded once the job's own context has ended. It must end before
	// River could rescue the job (RescueAfter - JobTimeout), or a slow
	// record would race a second send from another worker.
	RecordWithin time.Duration
}

// errGone cancels the job of an application that no longer exists (erased).
var errGone = errors.New("application no longer exists; nothing to send")

func (w *ConfirmationEmailWorker) Work(ctx context.Context, job *river.Job[ConfirmationEmailArgs]) error {
	id := job.Args.ApplicationID
	c, err := w.Store.Confirmation(ctx, id)
	if errors.Is(err, application.ErrNotFound) {
		return river.JobCancel(errGone)
	}
	if err != nil {
		return err
	}
	// A job that runs again after a success (a rescue, a re-enqueue) sends
	// nothing.
	if c.State == application.EmailSent {
		return nil
	}

	msg, err := mail.Confirmation(c, w.Sender.Domain())
	if err != nil {
		return fmt.Errorf("render confirmation: %w", err)
	}
	// Count the attempt before talking to the server, committed on its own.
	if _, err := w.Store.DeliveryAttemptStart(ctx, id); errors.Is(err, postgres.ErrAlreadySent) {
		return nil
	} else if err != nil {
		return err
	}

	sendErr := w.Sender.Send(ctx, msg)
	if sendErr == nil {
		// Accepted: from here on, record it even if the job's context ends
		// (shutdown), so that a resend is as unlikely as it can be.
		recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.RecordWithin)
		defer cancel()
		return w.recordSent(recordCtx, job)
	}

	var failure *mail.Failure
	if !errors.As(sendErr, &failure) {
		failure = &mail.Failure{}
	}
	// The job's context may have ended (timeout, shutdown): the ledger must
	// still leave "sending", or the status page would say so for ever.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.RecordWithin)
	defer cancel()
	switch {
	case failure.Permanent:
		if err := w.Store.DeliveryUnsent(recordCtx, id, application.EmailFailed, application.FailurePermanent, failure.Code); err != nil {
			return err
		}
		return river.JobCancel(failure)
	case job.Attempt >= job.MaxAttempts:
		if err := w.Store.DeliveryUnsent(recordCtx, id, application.EmailFailed, application.FailureExhausted, failure.Code); err != nil {
			return err
		}
		return failure
	default:
		if err := w.Store.DeliveryUnsent(recordCtx, id, application.EmailRetrying, application.FailureTemporary, failure.Code); err != nil {
			return err
		}
		return failure
	}
}

// recordSent marks the ledger sent and completes the job in one
// transaction. A database that is briefly unavailable (a dropped connection,
// a full server, a failover) is retried until ctx ends: failing the job
// instead would retry it, and the retry would send a second copy from a
// worker that never died (invariant 5).
func (w *ConfirmationEmailWorker) recordSent(ctx context.Context, job *river.Job[ConfirmationEmailArgs]) error {
	wait := 50 * time.Millisecond
	for {
		err := w.Store.DeliverySent(ctx, job.Args.ApplicationID, func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
		if err == nil || !errors.Is(err, application.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (w *ConfirmationEmailWorker) NextRetry(job *river.Job[ConfirmationEmailArgs]) time.Time {
	return w.Retry.next(time.Now(), job.Attempt)
}

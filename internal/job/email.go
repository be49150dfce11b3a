package job

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
)

// ConfirmationEmailWorker sends the confirmation email, at least once,
// behind a fence: every attempt first takes the delivery's lease (Lease
// long, or short and renewed by the worker's Heartbeat), no other attempt
// can start while it is live, the send ends before the lease does, and
// only the lease's attempt may record the outcome. So two sends never
// overlap, and a second copy can only come from an attempt that got the
// server's acceptance but could not record it before a newer attempt took
// over: its worker died, or lost the database for longer than the lease.
type ConfirmationEmailWorker struct {
	river.WorkerDefaults[ConfirmationEmailArgs]
	Store  *postgres.Store
	Sender *mail.Sender
	Retry  RetrySchedule
	// PublicURL and StatusTokens make the status link in the email
	// (INTAKE_PUBLIC_URL, INTAKE_STATUS_SECRET: the API's own).
	PublicURL    *url.URL
	StatusTokens statustoken.Keys
	// Employer signs the email (INTAKE_ORG_*).
	Employer application.Employer
	// Lease is an attempt's whole life: INTAKE_JOB_TIMEOUT +
	// INTAKE_RECORD_TIMEOUT, which config keeps within INTAKE_RESCUE_AFTER
	// so a run River's rescuer starts finds the attempt over. Without a
	// Heartbeat it is also the delivery's lease, taken whole up front.
	Lease time.Duration
	// RecordWithin is the end of Lease kept for recording the outcome
	// (INTAKE_RECORD_TIMEOUT): the send must end that long before Lease
	// does, and recording "sent" keeps trying through a database outage
	// until Lease ends.
	RecordWithin time.Duration
	// Heartbeat, when set, makes the delivery's lease short and renewed:
	// the attempt takes it for Heartbeat.Lease, each beat of this worker
	// moves it on, and the send is also cut before a lease its beats
	// stopped renewing can end, so a dead worker's job can run again within
	// seconds. Recording the outcome still has until Lease ends: "sent" is
	// recorded after the lease lapsed as long as no newer attempt started
	// (the attempt number is the fence, DeliveryMarkSent).
	Heartbeat *Heartbeat
	// Metrics counts each send's result and duration (nil: none).
	Metrics *Metrics
}

// Why a job ends without sending.
var (
	errGone      = errors.New("application no longer exists; nothing to send")
	errLeaseLost = errors.New("a newer attempt owns this delivery; this run stops")
)

func (w *ConfirmationEmailWorker) Work(ctx context.Context, job *river.Job[ConfirmationEmailArgs]) error {
	id := job.Args.ApplicationID
	// Take the lease, to the end of the send (the job's deadline) plus the
	// record's time, reading the email's data in the same statement (one
	// commit, shared with the attempts that start with it: the store's
	// group commit). The local clock is read before the database takes it,
	// and before the start waits in the group's queue, so every deadline
	// below falls before the lease's real end. With a
	// Heartbeat the lease is its short renewed one instead, and the time
	// read before taking it starts the send's guard.
	sendBy, leaseEnd := sendWindow(ctx, w.Lease, w.RecordWithin)
	lease, owner := time.Until(leaseEnd), ""
	if w.Heartbeat != nil {
		lease, owner = w.Heartbeat.Lease, w.Heartbeat.Self.ID
	}
	taken := time.Now()
	c, attempt, err := w.Store.DeliveryAttemptStartFor(ctx, id, lease, owner)
	var held *postgres.LeaseHeldError
	switch {
	case errors.Is(err, application.ErrNotFound):
		return river.JobCancel(errGone)
	case errors.Is(err, postgres.ErrAlreadySent):
		// A job that runs again after a success (a rescue, a re-enqueue)
		// sends nothing.
		return nil
	case errors.Is(err, postgres.ErrDeliveryFailed), errors.Is(err, postgres.ErrDeliveryCancelled):
		// Failed, or erased: this start is the fence, so an erasure that
		// committed first stops the send here.
		return river.JobCancel(err)
	case errors.As(err, &held):
		// A live attempt owns it: come back when its lease is over (a
		// snooze costs no attempt), and find it sent, failed or free.
		return river.JobSnooze(held.Left + 100*time.Millisecond)
	case err != nil:
		return err
	}
	if w.Heartbeat != nil {
		// Until this run returns, whatever it returns with: a lease it
		// leaves set (its outcome not recorded) is then renewed no more.
		defer w.Heartbeat.track(postgres.Attempt{ApplicationID: id, Number: attempt})()
	}

	// The job's context may have ended (timeout, shutdown): the outcome is
	// recorded all the same, within Lease, or the status page would say
	// "sending" until the lease ran out.
	recordCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), leaseEnd)
	defer cancel()

	c.StatusURL = mail.StatusPageURL(w.PublicURL, w.StatusTokens, id)
	c.Employer = w.Employer
	msg, err := mail.Confirmation(c, w.Sender.Domain())
	if err != nil {
		// Nothing was sent: the attempt ends as a temporary failure and
		// gives its lease back, so River's retry (after a fix of the
		// configuration) starts at once instead of waiting on it.
		return w.recordUnsent(recordCtx, job, attempt, &mail.Failure{}, fmt.Errorf("render confirmation: %w", err))
	}

	// The send ends at its deadline, or when this worker's beats stopped
	// renewing the lease (a worker that cannot beat may be called dead and
	// its job run again), never because the worker is shutting down: cut
	// after the message's final dot, a send would leave the server holding
	// a message the ledger calls unsent, and its retry would mail a second
	// copy from a worker that never died.
	sendCtx, cancelSend := context.WithDeadline(context.WithoutCancel(ctx), sendBy)
	if w.Heartbeat != nil {
		var cancelGuard context.CancelFunc
		sendCtx, cancelGuard = w.Heartbeat.guard(sendCtx, taken, time.Now())
		defer cancelGuard()
	}
	sendStart := time.Now()
	sendErr := w.Sender.Send(sendCtx, msg)
	cancelSend()
	w.Metrics.EmailSend(time.Since(sendStart), sendErr)

	if sendErr == nil {
		return w.recordSent(recordCtx, id, attempt)
	}
	var failure *mail.Failure
	if !errors.As(sendErr, &failure) {
		failure = &mail.Failure{}
	}
	return w.recordUnsent(recordCtx, job, attempt, failure, failure)
}

// recordUnsent records that attempt sent nothing, for failure: retrying
// (River runs the job again), or failed when the failure is permanent or
// this was the job's last attempt. It returns what the job ends with:
// result, or a cancel when the failure is permanent or a newer attempt owns
// the delivery.
func (w *ConfirmationEmailWorker) recordUnsent(ctx context.Context, job *river.Job[ConfirmationEmailArgs], attempt int, failure *mail.Failure, result error) error {
	state, class := application.EmailRetrying, application.FailureTemporary
	switch {
	case failure.Permanent:
		state, class, result = application.EmailFailed, application.FailurePermanent, river.JobCancel(failure)
	case job.Attempt >= job.MaxAttempts:
		state, class = application.EmailFailed, application.FailureExhausted
	}
	err := w.Store.DeliveryUnsent(ctx, job.Args.ApplicationID, attempt, state, class, failure.Code)
	if errors.Is(err, postgres.ErrLeaseLost) {
		return river.JobCancel(errLeaseLost)
	}
	if err != nil {
		return err
	}
	return result
}

// recordSent marks the ledger sent, and the job then returns nil: River
// completes it in its batch, many jobs a statement. The ledger is the
// truth, so a run after "sent" whose completion was lost (a crash before
// River's batch) finds it sent and sends nothing. A database that is
// unavailable (a dropped connection, a full server, a failover) is retried
// until ctx ends at the lease's end: failing the job instead would retry
// it, and the retry would send a second copy from a worker that never died
// (invariant 5).
func (w *ConfirmationEmailWorker) recordSent(ctx context.Context, id string, attempt int) error {
	wait := 50 * time.Millisecond
	for {
		err := w.Store.DeliverySent(ctx, id, attempt)
		if errors.Is(err, postgres.ErrLeaseLost) {
			return river.JobCancel(errLeaseLost)
		}
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

// sendWindow is when a send under a lease of lease from now must end
// (recordWithin before the lease, or at ctx's deadline if that is sooner)
// and when the lease taken for it ends (recordWithin after the send's end).
// The caller reads it before the database takes the lease.
func sendWindow(ctx context.Context, lease, recordWithin time.Duration) (sendBy, leaseEnd time.Time) {
	sendBy = time.Now().Add(lease - recordWithin)
	if d, ok := ctx.Deadline(); ok && d.Before(sendBy) {
		sendBy = d
	}
	return sendBy, sendBy.Add(recordWithin)
}

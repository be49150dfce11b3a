package job_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
)

var eraser = access.Caller{Actor: access.CLIActor("test")}

// An erasure that commits while an attempt is in the SMTP server's DATA
// (its start committed first: it is in flight) does not stop that email,
// which was built before the erasure; the ledger records it sent. No
// attempt starts after the erasure.
func TestErasureDuringASendInFlight(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	b.smtp.SetDelay(time.Second)
	w := b.worker(b.store, 30*time.Second, 10*time.Second)

	first := make(chan error, 1)
	j := b.runningJob(t)
	go func() { first <- w.Work(b.workCtx(context.Background()), j) }()
	b.waitLedger(t, "sending")

	require.NoError(t, b.store.EraseApplication(t.Context(), eraser, b.appID, "test"))
	state, _ := b.ledger(t)
	require.Equal(t, "cancelled", state, "the erasure committed while the send was in flight")

	require.NoError(t, <-first)
	require.Len(t, b.smtp.Messages(), 1, "the attempt in flight sent its email")
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state, "the ledger says the email went")
	require.Equal(t, 1, attempts)

	// Any later run of the job (a rescue, a retry) sends nothing.
	require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)))
	require.Len(t, b.smtp.Messages(), 1)
}

// An erasure that commits before an attempt starts means the email never
// goes: the job is cancelled, whether it reads the erased application or
// the erasure commits between its read and its start.
func TestErasureBeforeTheSendStopsIt(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	w := b.worker(b.store, 30*time.Second, 10*time.Second)
	j := b.runningJob(t)

	require.NoError(t, b.store.EraseApplication(t.Context(), eraser, b.appID, "test"))
	err := w.Work(b.workCtx(t.Context()), j)
	var cancel *rivertype.JobCancelError
	require.ErrorAs(t, err, &cancel)
	require.ErrorIs(t, err, postgres.ErrDeliveryCancelled)

	// The fence itself: an attempt that read the application before the
	// erasure still cannot start after it.
	_, _, err = b.store.DeliveryAttemptStart(t.Context(), b.appID, time.Minute)
	require.ErrorIs(t, err, postgres.ErrDeliveryCancelled)
	require.Empty(t, b.smtp.Messages())
	state, attempts := b.ledger(t)
	require.Equal(t, "cancelled", state)
	require.Zero(t, attempts)
}

// The erasure cancels, in River, the confirmation job that has not run.
func TestErasureCancelsTheQueuedJob(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	res, err := b.river.Insert(t.Context(), job.ConfirmationEmailArgs{ApplicationID: b.appID}, nil)
	require.NoError(t, err)
	require.NoError(t, b.store.EraseApplication(t.Context(), eraser, b.appID, "test"))
	row, err := b.river.JobGet(t.Context(), res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCancelled, row.State)
	require.NotNil(t, row.FinalizedAt)
}

// An erasure that commits while an attempt's start waits for the delivery
// row's lock (the start's snapshot, from which it reads the application,
// predates the erasure) still stops the attempt: the start decides on the
// row as the erasure left it.
func TestErasureCommittedDuringTheStartStopsIt(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	ctx := t.Context()
	erasure, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = erasure.Rollback(ctx) }()
	_, err = erasure.Exec(ctx, `UPDATE applications SET full_name = '(erased)', erased_at = now() WHERE id = $1`, b.appID)
	require.NoError(t, err)
	_, err = erasure.Exec(ctx, `UPDATE deliveries SET state = 'cancelled', last_error_class = 'erased' WHERE application_id = $1`, b.appID)
	require.NoError(t, err)

	started := make(chan error, 1)
	go func() {
		_, _, err := b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
		started <- err
	}()
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 1
	}, 10*time.Second, 5*time.Millisecond, "the start never waited for the erasure's lock")
	require.NoError(t, erasure.Commit(ctx))

	require.ErrorIs(t, <-started, postgres.ErrDeliveryCancelled)
	state, attempts := b.ledger(t)
	require.Equal(t, "cancelled", state)
	require.Zero(t, attempts)
}

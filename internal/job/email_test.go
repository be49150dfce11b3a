package job_test

import (
	"context"
	"log/slog"
	"net/mail"
	"net/url"
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
	mailpkg "github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// emailBundle is one application whose confirmation is queued (as the
// relay leaves it), a real SMTP server, and what a test needs to run
// confirmation jobs by hand.
type emailBundle struct {
	t      *testing.T
	pool   *pgxpool.Pool
	dbURL  string
	store  *postgres.Store
	river  *river.Client[pgx.Tx]
	smtp   *testkit.SMTPServer
	appID  string
	sender *mailpkg.Sender
}

func setupEmail(t *testing.T) *emailBundle {
	t.Helper()
	pool, dbURL := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	_, err := store.CreatePosting(t.Context(), application.NewPosting{Slug: "engineer", Title: "Engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "engineer", 1)
	var appID string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT id::text FROM applications`).Scan(&appID))
	_, err = pool.Exec(t.Context(), `INSERT INTO deliveries (application_id) VALUES ($1)`, appID)
	require.NoError(t, err)

	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := testkit.StartSMTP(t)
	return &emailBundle{t: t, pool: pool, dbURL: dbURL, store: store, river: client, smtp: srv, appID: appID,
		sender: newSender(t, srv, 5*time.Second)}
}

func newSender(t *testing.T, srv *testkit.SMTPServer, timeout time.Duration) *mailpkg.Sender {
	t.Helper()
	sender, err := mailpkg.NewSender(mailpkg.SMTPConfig{
		Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: timeout,
		From: &mail.Address{Name: "Intake", Address: "jobs@intake.test"},
	})
	require.NoError(t, err)
	return sender
}

// worker is the email worker with a lease of lease, recordWithin of it kept
// for the record.
func (b *emailBundle) worker(store *postgres.Store, lease, recordWithin time.Duration) *job.ConfirmationEmailWorker {
	cfg := testkit.DefaultConfig(b.t)
	return &job.ConfirmationEmailWorker{
		PublicURL:    cfg.PublicURL,
		Employer:     cfg.Employer,
		StatusTokens: cfg.StatusTokens,
		Store:        store,
		Sender:       b.sender,
		Retry:        job.RetrySchedule{Base: time.Second, Max: time.Second, For: time.Minute},
		Lease:        lease,
		RecordWithin: recordWithin,
	}
}

// runningJob inserts a confirmation job for the bundle's application and
// marks it running, as River does when a worker fetches it.
func (b *emailBundle) runningJob(t *testing.T) *river.Job[job.ConfirmationEmailArgs] {
	t.Helper()
	args := job.ConfirmationEmailArgs{ApplicationID: b.appID}
	res, err := b.river.Insert(t.Context(), args, &river.InsertOpts{MaxAttempts: 5})
	require.NoError(t, err)
	_, err = b.pool.Exec(t.Context(), `
		UPDATE river_job SET state = 'running', attempt = attempt + 1, attempted_at = now(), attempted_by = '{test}'
		WHERE id = $1`, res.Job.ID)
	require.NoError(t, err)
	row, err := b.river.JobGet(t.Context(), res.Job.ID)
	require.NoError(t, err)
	return &river.Job[job.ConfirmationEmailArgs]{JobRow: row, Args: args}
}

// workCtx is ctx as River hands it to a worker (JobCompleteTx needs it).
func (b *emailBundle) workCtx(ctx context.Context) context.Context {
	return rivertest.WorkContext(ctx, b.river)
}

func (b *emailBundle) ledger(t *testing.T) (state string, attempts int) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(t.Context(),
		`SELECT state, attempts FROM deliveries WHERE application_id = $1`, b.appID).Scan(&state, &attempts))
	return state, attempts
}

func (b *emailBundle) waitLedger(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if state, _ := b.ledger(t); state == want {
			return
		}
		if time.Now().After(deadline) {
			state, attempts := b.ledger(t)
			t.Fatalf("ledger %s after %d attempts, want %s", state, attempts, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two runs meet while the first is talking to the server (a rescue, an
// operator's retry, a second job for the same application): the second
// must not send, and comes back once the first's lease is over.
func TestSecondRunWaitsForTheLiveAttempt(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	b.smtp.SetDelay(time.Second) // the first run sits in DATA
	w := b.worker(b.store, 30*time.Second, 10*time.Second)

	first := make(chan error, 1)
	firstJob := b.runningJob(t)
	go func() { first <- w.Work(b.workCtx(context.Background()), firstJob) }()
	b.waitLedger(t, "sending")

	err := w.Work(b.workCtx(t.Context()), b.runningJob(t))
	var snooze *rivertype.JobSnoozeError
	require.ErrorAs(t, err, &snooze, "the second run must wait for the live attempt, not send")
	require.Greater(t, snooze.Duration, 25*time.Second, "it waits for the rest of the first attempt's lease")

	require.NoError(t, <-first)
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 1, attempts, "the second run counted no attempt")
	// Back from its snooze, the second run finds the email sent.
	require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)))
	require.Len(t, b.smtp.Messages(), 1)
}

// A run that outlived its lease (its worker stalled) is fenced off: a newer
// attempt took the delivery over, and nothing the old one writes later
// changes the ledger.
func TestLateAttemptCannotOverwriteNewerOne(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	ctx := t.Context()

	_, old, err := b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.NoError(t, err)
	var held *postgres.LeaseHeldError
	_, _, err = b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.ErrorAs(t, err, &held, "a live lease keeps a second attempt out")

	b.expireLease(t) // the old attempt stalled past its lease
	_, newer, err := b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.NoError(t, err)
	require.Equal(t, old+1, newer)

	// The old attempt comes back with a failure: refused, ledger untouched.
	err = b.store.DeliveryUnsent(ctx, b.appID, old, application.EmailFailed, application.FailurePermanent, 550)
	require.ErrorIs(t, err, postgres.ErrLeaseLost)
	err = b.store.DeliverySent(ctx, b.appID, old)
	require.ErrorIs(t, err, postgres.ErrLeaseLost)
	state, attempts := b.ledger(t)
	require.Equal(t, "sending", state)
	require.Equal(t, newer, attempts)

	// The owner records; after that nobody starts again.
	require.NoError(t, b.store.DeliverySent(ctx, b.appID, newer))
	_, _, err = b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.ErrorIs(t, err, postgres.ErrAlreadySent)
	err = b.store.DeliveryUnsent(ctx, b.appID, newer, application.EmailRetrying, application.FailureTemporary, 0)
	require.ErrorIs(t, err, postgres.ErrLeaseLost, "a sent delivery is never downgraded")
	state, _ = b.ledger(t)
	require.Equal(t, "sent", state)
}

// An attempt's send ends RecordWithin before its lease, whatever the SMTP
// timeout: it can never still be talking to the server when a newer attempt
// may take over. Its failure is recorded and the lease given back.
func TestSendEndsBeforeTheLease(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	b.smtp.SetReplyDelay(3 * time.Second) // never greets within the lease
	w := b.worker(b.store, 1500*time.Millisecond, time.Second)

	start := time.Now()
	err := w.Work(b.workCtx(context.Background()), b.runningJob(t))
	elapsed := time.Since(start)

	var failure *mailpkg.Failure
	require.ErrorAs(t, err, &failure)
	require.False(t, failure.Permanent)
	require.Less(t, elapsed, time.Second, "the send ran %s into a 1.5s lease with 1s kept for the record", elapsed)
	state, attempts := b.ledger(t)
	require.Equal(t, "retrying", state)
	require.Equal(t, 1, attempts)
	// The lease was given back: the next run may start at once.
	_, _, err = b.store.DeliveryAttemptStart(t.Context(), b.appID, time.Minute)
	require.NoError(t, err)
}

// The database goes away right after the SMTP server accepted the message,
// for longer than the old 10 s record budget: the worker keeps trying to
// record "sent" within its lease, and the job's next run sends nothing.
func TestSentIsRecordedThroughALongOutage(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	u, err := url.Parse(b.dbURL)
	require.NoError(t, err)
	proxy := testkit.StartProxy(t, u.Host)
	proxied, err := postgres.NewPool(t.Context(), withHostPort(t, b.dbURL, proxy.Addr()), nil)
	require.NoError(t, err)
	t.Cleanup(proxied.Close)

	const outage = 12 * time.Second
	b.smtp.OnAccept(func() {
		proxy.Cut(testkit.Refuse)
		time.AfterFunc(outage, proxy.Restore)
	})
	w := b.worker(postgres.NewStore(proxied), 20*time.Second, 16*time.Second)

	j := b.runningJob(t)
	err = w.Work(b.workCtx(context.Background()), j)
	require.NoError(t, err, "recording sent must outlast the outage")
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 1, attempts)

	// Whatever River does with the job next, a run finds it sent.
	b.smtp.OnAccept(nil)
	require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)))
	require.Len(t, b.smtp.Messages(), 1, "one accepted copy")
}

// A delivery whose job is gone (discarded after its worker died on the last
// attempt, cancelled, deleted) ends failed, "abandoned", instead of saying
// "sending" for ever; one whose job can still run is left alone.
func TestAbandonedDeliveriesEndFailed(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	ctx := t.Context()

	// The worker died mid-send on the job's last attempt: the lease ran
	// out and River discarded the job without running it again.
	j := b.runningJob(t)
	_, _, err := b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.NoError(t, err)
	b.markReconciled(t) // the reconciler gave it its second job already
	ids, err := b.store.AbandonDeliveries(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, ids, "the lease is live: not abandoned")
	b.expireLease(t)
	// A job that can still run (running, waiting for a retry, snoozed)
	// keeps its delivery.
	for _, state := range []string{"running", "retryable", "scheduled", "available"} {
		_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = $2 WHERE id = $1`, j.ID, state)
		require.NoError(t, err)
		ids, err = b.store.AbandonDeliveries(ctx, 0)
		require.NoError(t, err)
		require.Empty(t, ids, "the job is %s: not abandoned", state)
	}

	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, j.ID)
	require.NoError(t, err)
	ids, err = b.store.AbandonDeliveries(ctx, time.Hour)
	require.NoError(t, err)
	require.Empty(t, ids, "touched within quietFor: left alone")
	ids, err = b.store.AbandonDeliveries(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, []string{b.appID}, ids)

	var class string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT state || '/' || last_error_class FROM deliveries WHERE application_id = $1`, b.appID).Scan(&class))
	require.Equal(t, "failed/abandoned", class)
	ids, err = b.store.AbandonDeliveries(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, ids, "once is enough")
}

// The reconciler comes first: a delivery whose job is gone and that was
// never reconciled is the reconciler's, not the abandoned check's.
func TestAbandonedCheckLeavesUnreconciledToReconciler(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	ctx := t.Context()
	j := b.runningJob(t)
	_, _, err := b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.NoError(t, err)
	b.expireLease(t)
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, j.ID)
	require.NoError(t, err)
	ids, err := b.store.AbandonDeliveries(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, ids, "not reconciled yet: the reconciler re-enqueues it first")
	state, _ := b.ledger(t)
	require.Equal(t, "sending", state)
}

// The worker died on the job's last attempt and River discarded the job:
// the reconciler enqueues one new job for the delivery, audited as the
// system, records that it did, and never does it again; the new job sends
// the email.
func TestReconcilerReenqueuesOnce(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	ctx := t.Context()
	rc := &job.ReconcilerWorker{Store: b.store, Logger: slog.New(slog.DiscardHandler), Now: time.Now, After: time.Hour, MaxAttempts: 5}
	reconcile := func() {
		t.Helper()
		require.NoError(t, rc.Work(b.workCtx(ctx), &river.Job[job.ReconcilerArgs]{}))
	}
	first := b.runningJob(t)
	_, _, err := b.store.DeliveryAttemptStart(ctx, b.appID, time.Minute)
	require.NoError(t, err)

	reconcile()
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email'`), "the job is running: nothing to do")
	b.expireLease(t)
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, first.ID)
	require.NoError(t, err)
	reconcile()
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email'`), "touched within After: left alone")

	_, err = b.pool.Exec(ctx, `UPDATE deliveries SET updated_at = now() - interval '2 hours'`)
	require.NoError(t, err)
	reconcile()
	reconcile()
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND state = 'available'`), "one new job")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM deliveries WHERE reconciled_at IS NOT NULL`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_log WHERE actor = 'system' AND action = 'deliveries.reconcile'
		AND target_type = 'application' AND target_id = '`+b.appID+`' AND outcome = 'ok'`))

	secondID := b.idOf(t, `SELECT id FROM river_job WHERE kind = 'confirmation_email' AND state = 'available'`)
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1`, secondID)
	require.NoError(t, err)
	second, err := b.river.JobGet(ctx, secondID)
	require.NoError(t, err)
	require.NoError(t, b.worker(b.store, 30*time.Second, 10*time.Second).Work(b.workCtx(ctx),
		&river.Job[job.ConfirmationEmailArgs]{JobRow: second, Args: job.ConfirmationEmailArgs{ApplicationID: b.appID}}))
	b.waitLedger(t, "sent")
	require.Len(t, b.smtp.Messages(), 1)

	// Lost again (an operator deletes the job): never a third job.
	_, err = b.pool.Exec(ctx, `UPDATE deliveries SET state = 'queued', sent_at = NULL, updated_at = now() - interval '2 hours';
		DELETE FROM river_job WHERE kind = 'confirmation_email'`)
	require.NoError(t, err)
	reconcile()
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email'`), "reconciled once already")
}

func (b *emailBundle) markReconciled(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `UPDATE deliveries SET reconciled_at = now() WHERE application_id = $1`, b.appID)
	require.NoError(t, err)
}

func (b *emailBundle) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), query).Scan(&n))
	return n
}

func (b *emailBundle) idOf(t *testing.T, query string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(t.Context(), query).Scan(&id))
	return id
}

// expireLease ends the live attempt's lease now, as time would.
func (b *emailBundle) expireLease(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `UPDATE deliveries SET lease_expires_at = now() WHERE application_id = $1`, b.appID)
	require.NoError(t, err)
}

// A worker shutting down cancels its jobs' contexts: a send that already
// handed the server its message must not be cut while it waits for the
// reply to the final dot, or the server keeps a message the ledger calls
// unsent, and its retry mails a second copy from a worker that never died.
func TestShutdownDoesNotCutASend(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	b.smtp.SetDelay(1500 * time.Millisecond) // the reply to the final dot is slow
	w := b.worker(b.store, 30*time.Second, 10*time.Second)

	ctx, cancel := context.WithCancel(b.workCtx(context.Background()))
	time.AfterFunc(700*time.Millisecond, cancel) // StopAndCancel, mid-DATA
	require.NoError(t, w.Work(ctx, b.runningJob(t)))
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 1, attempts)
	require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)))
	require.Len(t, b.smtp.Messages(), 1)
}

// withHostPort is dbURL pointed at addr (a proxy in front of its server).
func withHostPort(t *testing.T, dbURL, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.Host = addr
	return u.String()
}

package job_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
)

// statementLog records the statements a pool's connections send, each by
// its sqlc name (or its first word: begin, commit, River's own).
type statementLog struct {
	mu    sync.Mutex
	names []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	name, _, _ := strings.Cut(strings.TrimSpace(data.SQL), "\n")
	if n, ok := strings.CutPrefix(name, "-- name: "); ok {
		name, _, _ = strings.Cut(n, " ")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, name)
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (l *statementLog) sent() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.names...)
}

// tracedStore is a store over the bundle's database whose statements log
// records.
func (b *emailBundle) tracedStore(t *testing.T) (*postgres.Store, *statementLog) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.dbURL)
	require.NoError(t, err)
	log := &statementLog{}
	cfg.ConnConfig.Tracer = log
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return postgres.NewStore(pool), log
}

// An ordinary attempt reaches the SMTP server after one statement, outside
// any transaction: one commit reads the email's data, takes the lease and
// counts the attempt. Recording "sent" is one more autocommit statement;
// River completes the job in its own batch.
func TestAttemptCostsOneCommitBeforeTheSend(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	store, log := b.tracedStore(t)
	var beforeSend []string
	b.smtp.OnAccept(func() { beforeSend = log.sent() })

	require.NoError(t, b.worker(store, 30*time.Second, 10*time.Second).Work(b.workCtx(t.Context()), b.runningJob(t)))
	require.Equal(t, []string{"DeliveryAttemptStartMany"}, beforeSend)
	require.Equal(t, []string{"DeliveryAttemptStartMany", "DeliveryMarkSentMany"}, log.sent())
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 1, attempts)
}

// A job whose completion was lost after "sent" was recorded (the worker
// died before River's batched completion) runs again and sends nothing:
// the ledger, not the job row, says whether the email went.
func TestLostCompletionAfterSentSendsNoSecondEmail(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	h := newHeartbeat(b.store, "worker-lost-completion")
	runHeartbeat(t, h)
	b.startWorker(t, h)
	res, err := b.river.Insert(t.Context(), job.ConfirmationEmailArgs{ApplicationID: b.appID}, &river.InsertOpts{MaxAttempts: 5})
	require.NoError(t, err)
	id := res.Job.ID
	require.Eventually(t, func() bool { return b.jobState(t, id).State == "completed" }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, b.smtp.Messages(), 1)

	_, err = b.pool.Exec(t.Context(), `UPDATE river_job SET state = 'available', finalized_at = NULL, scheduled_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s := b.jobState(t, id)
		return s.State == "completed" && s.Attempt == 2
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, b.smtp.Messages(), 1, "the re-run sent a second copy")
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 1, attempts, "the re-run took no attempt")
}

// A confirmation that cannot be rendered (here: no employer's name, a
// configuration error) sends nothing, and its attempt records a temporary
// failure and gives the lease back: River's retry starts at once instead of
// snoozing on a lease nobody uses.
func TestRenderFailureEndsTheAttempt(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	w := b.worker(b.store, 30*time.Second, 10*time.Second)
	w.Employer.Name = ""

	err := w.Work(b.workCtx(t.Context()), b.runningJob(t))
	require.ErrorContains(t, err, "render confirmation")
	var lease *time.Time
	require.NoError(t, b.pool.QueryRow(t.Context(),
		`SELECT lease_expires_at FROM deliveries WHERE application_id = $1`, b.appID).Scan(&lease))
	require.Nil(t, lease, "the failed attempt kept its lease")
	state, attempts := b.ledger(t)
	require.Equal(t, "retrying", state)
	require.Equal(t, 1, attempts)
	require.Empty(t, b.smtp.Messages())

	require.NoError(t, b.worker(b.store, 30*time.Second, 10*time.Second).Work(b.workCtx(t.Context()), b.runningJob(t)))
	state, attempts = b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 2, attempts)
}

// A job for an application that does not exist ends cancelled, and the
// attempt's start writes no ledger row for it.
func TestJobForAMissingApplicationIsCancelled(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	args := job.ConfirmationEmailArgs{ApplicationID: uuid.NewString()}
	running := b.runningJob(t)
	err := b.worker(b.store, 30*time.Second, 10*time.Second).Work(b.workCtx(t.Context()),
		&river.Job[job.ConfirmationEmailArgs]{JobRow: running.JobRow, Args: args})
	var cancel *rivertype.JobCancelError
	require.ErrorAs(t, err, &cancel)
	require.ErrorContains(t, err, "no longer exists")
	require.Zero(t, b.count(t, `SELECT count(*) FROM deliveries WHERE application_id = '`+args.ApplicationID+`'`))
	require.Empty(t, b.smtp.Messages())
}

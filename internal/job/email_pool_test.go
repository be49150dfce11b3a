package job_test

import (
	"net/mail"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/job"
	mailpkg "github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/testkit"
)

// usePooledSender points the bundle's worker at a sender that keeps its
// connections, as intake-worker's does, logging in when auth is set.
func (b *emailBundle) usePooledSender(t *testing.T, auth bool) {
	t.Helper()
	cfg := mailpkg.SMTPConfig{
		Host: b.smtp.Host, Port: b.smtp.Port, TLS: "none", Timeout: 5 * time.Second, PoolSize: 2,
		From: &mail.Address{Name: "Intake", Address: "jobs@intake.test"},
	}
	if auth {
		b.smtp.RequireAuth("intake", "secret")
		cfg.Username, cfg.Password = "intake", "secret"
	}
	sender, err := mailpkg.NewSender(cfg)
	require.NoError(t, err)
	t.Cleanup(sender.Close)
	b.sender = sender
}

// The SMTP server drops the connection at each stage of the worker's send.
// However it breaks, the ledger ends sent, after one River retry when the
// first send failed; the server holds one copy, except when it kept the
// message and dropped the connection before its reply: the worker cannot
// tell that from a refusal, and its retry is a second copy with the same
// Message-ID (what the fence allows).
func TestEmailSentOnceWhereverTheConnectionDrops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stage   testkit.SMTPStage
		auth    bool
		retried bool // the first run fails, River's retry sends
		copies  int
	}{
		{stage: testkit.StageGreeting, retried: true, copies: 1},
		{stage: testkit.StageEHLO, retried: true, copies: 1},
		{stage: testkit.StageAuth, auth: true, retried: true, copies: 1},
		{stage: testkit.StageMail, retried: true, copies: 1},
		{stage: testkit.StageRcpt, retried: true, copies: 1},
		{stage: testkit.StageData, retried: true, copies: 1},
		{stage: testkit.StageBody, retried: true, copies: 1},
		{stage: testkit.StageFinalDot, retried: true, copies: 1},
		{stage: testkit.StageAccepted, retried: true, copies: 2},
		{stage: testkit.StageAfterReply, copies: 1},
	} {
		t.Run(string(tc.stage), func(t *testing.T) {
			t.Parallel()
			b := setupEmail(t)
			b.usePooledSender(t, tc.auth)
			w := b.worker(b.store, 30*time.Second, 10*time.Second)
			b.smtp.DropAt(tc.stage)

			j := b.runningJob(t)
			err := w.Work(b.workCtx(t.Context()), j)
			if tc.retried {
				var failure *mailpkg.Failure
				require.ErrorAs(t, err, &failure)
				require.False(t, failure.Permanent, "a dropped connection is temporary: %v", err)
				state, _ := b.ledger(t)
				require.Equal(t, "retrying", state)
				err = w.Work(b.workCtx(t.Context()), j) // River's retry
			}
			require.NoError(t, err)
			state, attempts := b.ledger(t)
			require.Equal(t, "sent", state)
			require.Equal(t, map[bool]int{true: 2, false: 1}[tc.retried], attempts)
			require.Equal(t, map[string]int{mailpkg.MessageID(b.appID, "intake.test"): tc.copies}, b.smtp.CountByMessageID())
		})
	}
}

// The next email on a pooled connection that the server closed (right
// after its last reply, or while it sat idle) goes out in the same run, on
// a new connection: no River retry, one copy.
func TestEmailOnADeadPooledConnectionSentInOneRun(t *testing.T) {
	t.Parallel()
	for name, kill := range map[string]func(*testkit.SMTPServer){
		"closed after the reply": func(srv *testkit.SMTPServer) { srv.DropAt(testkit.StageAfterReply) },
		"closed while idle":      nil,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupEmail(t)
			b.usePooledSender(t, false)
			w := b.worker(b.store, 30*time.Second, 10*time.Second)
			second := b.secondApplication(t)

			if kill != nil {
				kill(b.smtp)
			}
			require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)))
			if kill == nil {
				b.smtp.DropConnections()
			}
			require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJobFor(t, second)))

			require.Equal(t, 2, b.smtp.Dials())
			require.Equal(t, map[string]int{
				mailpkg.MessageID(b.appID, "intake.test"): 1,
				mailpkg.MessageID(second, "intake.test"):  1,
			}, b.smtp.CountByMessageID())
			for _, id := range []string{b.appID, second} {
				var state string
				var attempts int
				require.NoError(t, b.pool.QueryRow(t.Context(),
					`SELECT state, attempts FROM deliveries WHERE application_id = $1`, id).Scan(&state, &attempts))
				require.Equal(t, "sent", state)
				require.Equal(t, 1, attempts)
			}
		})
	}
}

// secondApplication adds another application to the bundle's posting, its
// delivery queued, and returns its id.
func (b *emailBundle) secondApplication(t *testing.T) string {
	t.Helper()
	var id string
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		WITH app AS (
			INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
			SELECT gen_random_uuid(), id, 'Second Applicant', 'second@example.com', 'second@example.com', now()
			FROM postings WHERE slug = 'engineer'
			RETURNING id
		), ev AS (
			INSERT INTO outbox_events (id, kind, aggregate_id, payload)
			SELECT gen_random_uuid(), 'application.submitted', app.id,
			       jsonb_build_object('application_id', app.id, 'posting_slug', 'engineer')
			FROM app
		)
		SELECT id::text FROM app`).Scan(&id))
	_, err := b.pool.Exec(t.Context(), `INSERT INTO deliveries (application_id) VALUES ($1)`, id)
	require.NoError(t, err)
	return id
}

// runningJobFor is runningJob for another application.
func (b *emailBundle) runningJobFor(t *testing.T, applicationID string) *river.Job[job.ConfirmationEmailArgs] {
	t.Helper()
	args := job.ConfirmationEmailArgs{ApplicationID: applicationID}
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

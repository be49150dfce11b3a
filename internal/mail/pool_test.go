package mail_test

import (
	"cmp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/testkit"
)

// poolBundle is a real SMTP server and a pooling sender pointed at it.
type poolBundle struct {
	srv    *testkit.SMTPServer
	sender *mail.Sender
	msg    mail.Message
}

// setupPool starts a server and a sender with cfg's pool settings (PoolSize
// 1 when unset).
func setupPool(t *testing.T, cfg mail.SMTPConfig) *poolBundle {
	t.Helper()
	srv := testkit.StartSMTP(t)
	cfg.Host, cfg.Port = srv.Host, srv.Port
	cfg.Timeout = cmp.Or(cfg.Timeout, 5*time.Second)
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 1
	}
	sender := newSenderWith(t, cfg)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)
	return &poolBundle{srv: srv, sender: sender, msg: msg}
}

func (b *poolBundle) send(t *testing.T) error {
	t.Helper()
	return b.sender.Send(t.Context(), b.msg)
}

func TestPooledConnectionCarriesTheNextMessage(t *testing.T) {
	t.Parallel()
	b := setupPool(t, mail.SMTPConfig{})

	require.NoError(t, b.send(t))
	require.NoError(t, b.send(t))
	require.NoError(t, b.send(t))

	require.Len(t, b.srv.Messages(), 3)
	require.Equal(t, 1, b.srv.Dials(), "one connection carries every message")
	require.EqualValues(t, 1, b.sender.Opened())
	require.Zero(t, b.srv.Commands("RSET"), "clean transactions need no RSET between them")
	require.Zero(t, b.srv.Commands("QUIT"))
	require.Equal(t, 1, b.srv.Open())

	// Shutdown says QUIT on what the pool holds.
	b.sender.Close()
	require.Equal(t, 1, b.srv.Commands("QUIT"))
	b.srv.WaitFor(t, "the pooled connection closed", func() bool { return b.srv.Open() == 0 })
}

// N sends at a time never hold more than N connections, and never dial
// more than N over many messages.
func TestPoolUsesAtMostConcurrencyConnections(t *testing.T) {
	t.Parallel()
	const n, each = 4, 10
	b := setupPool(t, mail.SMTPConfig{PoolSize: n})
	b.srv.SetReplyDelay(2 * time.Millisecond) // so the sends overlap

	var wg sync.WaitGroup
	errs := make(chan error, n*each)
	for range n {
		wg.Go(func() {
			for range each {
				errs <- b.sender.Send(t.Context(), b.msg)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, b.srv.Messages(), n*each)
	require.LessOrEqual(t, b.srv.MaxOpen(), n)
	require.LessOrEqual(t, b.srv.Dials(), n)
}

func TestConnectionRetiresAfterMaxMessages(t *testing.T) {
	t.Parallel()
	b := setupPool(t, mail.SMTPConfig{MaxMessages: 3})

	for range 7 {
		require.NoError(t, b.send(t))
	}
	require.Len(t, b.srv.Messages(), 7)
	require.Equal(t, 3, b.srv.Dials(), "3 + 3 + 1 messages")
	require.Equal(t, 2, b.srv.Commands("QUIT"), "each full connection was closed with QUIT")
}

func TestIdleConnectionClosedAfterIdleTimeout(t *testing.T) {
	t.Parallel()
	b := setupPool(t, mail.SMTPConfig{IdleTimeout: 100 * time.Millisecond})

	require.NoError(t, b.send(t))
	b.srv.WaitFor(t, "the idle connection closed with QUIT", func() bool {
		return b.srv.Commands("QUIT") == 1 && b.srv.Open() == 0
	})
	require.NoError(t, b.send(t))
	require.Equal(t, 2, b.srv.Dials())
}

// A refused transaction leaves the connection usable: it is reset (RSET)
// and kept for the next message.
func TestRefusedTransactionIsResetAndKept(t *testing.T) {
	t.Parallel()
	b := setupPool(t, mail.SMTPConfig{})
	b.srv.Refuse(func(string) *smtp.SMTPError { return testkit.TempFailure() })
	requireFailure(t, b.send(t), false, 451)

	b.srv.Refuse(nil)
	require.NoError(t, b.send(t))
	require.Equal(t, 1, b.srv.Commands("RSET"))
	require.Equal(t, 1, b.srv.Dials())
	require.Len(t, b.srv.Messages(), 1)
}

// The server drops the connection at each stage of a send on a new
// connection. Before the final dot nothing is accepted and the send fails
// temporarily; after it the server may hold the message and the failure
// says so; a drop after the 250 is a delivery. Every time, the next send
// works on a connection of its own: a broken one is never pooled.
func TestConnectionDroppedAtEachStage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stage         testkit.SMTPStage
		auth          bool
		accepted      int  // messages the server holds after the send
		sent          bool // Send returned nil
		maybeAccepted bool
	}{
		{stage: testkit.StageGreeting},
		{stage: testkit.StageEHLO},
		{stage: testkit.StageAuth, auth: true},
		{stage: testkit.StageMail},
		{stage: testkit.StageRcpt},
		{stage: testkit.StageData},
		{stage: testkit.StageBody},
		{stage: testkit.StageFinalDot, maybeAccepted: true},
		{stage: testkit.StageAccepted, accepted: 1, maybeAccepted: true},
		{stage: testkit.StageAfterReply, accepted: 1, sent: true},
	} {
		t.Run(string(tc.stage), func(t *testing.T) {
			t.Parallel()
			cfg := mail.SMTPConfig{}
			if tc.auth {
				cfg.Username, cfg.Password = "intake", "secret"
			}
			b := setupPool(t, cfg)
			if tc.auth {
				b.srv.RequireAuth("intake", "secret")
			}
			b.srv.DropAt(tc.stage)

			err := b.send(t)
			if tc.sent {
				require.NoError(t, err)
			} else {
				f := requireFailure(t, err, false, 0)
				if tc.stage != testkit.StageBody {
					// Cut mid-message, the client may or may not have
					// handed over its final dot before it noticed.
					require.Equal(t, tc.maybeAccepted, f.MaybeAccepted, "MaybeAccepted: %v", err)
				}
			}
			require.Len(t, b.srv.Messages(), tc.accepted)

			require.NoError(t, b.send(t), "the next send")
			require.Len(t, b.srv.Messages(), tc.accepted+1)
			require.Equal(t, 2, b.srv.Dials(), "the broken connection was not reused")
		})
	}
}

// A pooled connection found dead at MAIL (the server closed it while it
// was idle, or right after the last reply) cannot have taken anything of
// the message: the send tries once more on a new connection, and succeeds.
func TestDeadPooledConnectionIsReplacedWithinTheSend(t *testing.T) {
	t.Parallel()
	for name, kill := range map[string]func(*testkit.SMTPServer){
		"dropped at MAIL":   func(srv *testkit.SMTPServer) { srv.DropAt(testkit.StageMail) },
		"closed while idle": func(srv *testkit.SMTPServer) { srv.DropConnections() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupPool(t, mail.SMTPConfig{})
			require.NoError(t, b.send(t))
			kill(b.srv)

			require.NoError(t, b.send(t))
			require.Len(t, b.srv.Messages(), 2)
			require.Equal(t, 2, b.srv.Dials())
			require.NoError(t, b.send(t), "the new connection is pooled in turn")
			require.Equal(t, 2, b.srv.Dials())
			require.EqualValues(t, 2, b.sender.Opened())
		})
	}
}

// Only the first try on a pooled connection is retried: a new connection
// that fails at MAIL is a failure like any other.
func TestFreshConnectionFailingAtMailIsNotRetried(t *testing.T) {
	t.Parallel()
	b := setupPool(t, mail.SMTPConfig{})
	require.NoError(t, b.send(t))
	b.srv.DropAt(testkit.StageMail) // the pooled connection
	b.srv.DropAt(testkit.StageMail) // and its replacement

	requireFailure(t, b.send(t), false, 0)
	require.Len(t, b.srv.Messages(), 1)
	require.Equal(t, 2, b.srv.Dials(), "one retry, not more")
}

// A reply that comes after its timeout leaves the connection out of step
// (the late reply would answer the next command): it is closed, not
// pooled, and the next send starts afresh.
func TestTimedOutConnectionIsNotReused(t *testing.T) {
	t.Parallel()
	b := setupPool(t, mail.SMTPConfig{Timeout: 300 * time.Millisecond})
	b.srv.Refuse(func(string) *smtp.SMTPError {
		// A server slow to answer RCPT, once: the reply comes after the
		// timeout, within the next command's (an RSET's, were the
		// connection kept).
		time.Sleep(450 * time.Millisecond)
		return nil
	})
	f := requireFailure(t, b.send(t), false, 0)
	require.Contains(t, f.Error(), "rcpt: timeout")

	b.srv.Refuse(nil)
	require.NoError(t, b.send(t))
	require.Len(t, b.srv.Messages(), 1)
	require.Equal(t, 2, b.srv.Dials())
}

// BenchmarkSend is one message to the in-process server, on a pooled
// connection and on a new connection each time (greeting, EHLO, QUIT).
func BenchmarkSend(b *testing.B) {
	for name, poolSize := range map[string]int{"pooled": 1, "new connection": 0} {
		b.Run(name, func(b *testing.B) {
			srv := testkit.StartSMTP(b)
			sender, err := mail.NewSender(mail.SMTPConfig{
				Host: srv.Host, Port: srv.Port, TLS: "none", From: testFrom,
				Timeout: 5 * time.Second, PoolSize: poolSize,
			})
			require.NoError(b, err)
			b.Cleanup(sender.Close)
			msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
			require.NoError(b, err)
			for b.Loop() {
				if err := sender.Send(b.Context(), msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

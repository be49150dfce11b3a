package mail_test

import (
	"cmp"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/testkit"
)

var testFrom = &netmail.Address{Name: "Intake", Address: "jobs@" + testDomain}

// newSender returns a sender to host:port without TLS, keeping up to two
// connections, closed when the test ends.
func newSender(t *testing.T, host string, port int, timeout time.Duration) *mail.Sender {
	t.Helper()
	return newSenderWith(t, mail.SMTPConfig{Host: host, Port: port, Timeout: timeout, PoolSize: 2})
}

// newSenderWith completes cfg (no TLS, testFrom) and returns its sender,
// closed when the test ends.
func newSenderWith(t *testing.T, cfg mail.SMTPConfig) *mail.Sender {
	t.Helper()
	cfg.TLS = cmp.Or(cfg.TLS, "none")
	cfg.From = testFrom
	s, err := mail.NewSender(cfg)
	require.NoError(t, err)
	require.Equal(t, testDomain, s.Domain())
	t.Cleanup(s.Close)
	return s
}

// senderBundle is a real SMTP server and a sender pointed at it.
type senderBundle struct {
	srv    *testkit.SMTPServer
	sender *mail.Sender
	msg    mail.Message
}

func setupSender(t *testing.T) *senderBundle {
	t.Helper()
	srv := testkit.StartSMTP(t)
	sender := newSender(t, srv.Host, srv.Port, 5*time.Second)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)
	return &senderBundle{srv: srv, sender: sender, msg: msg}
}

// requireFailure checks that err is a *mail.Failure of the given class and
// code whose text quotes neither the recipient nor the server.
func requireFailure(t *testing.T, err error, permanent bool, code int) *mail.Failure {
	t.Helper()
	require.Error(t, err)
	var f *mail.Failure
	require.True(t, errors.As(err, &f), "error %T (%v) is not a *mail.Failure", err, err)
	require.Equal(t, permanent, f.Permanent, "permanent; error: %v", err)
	require.Equal(t, code, f.Code, "code; error: %v", err)
	c := fixedConfirmation()
	text := err.Error()
	for _, secret := range []string{
		c.Email, "ada@", c.FullName,
		testkit.TempFailure().Message, testkit.PermFailure().Message,
		"try again later", "mailbox unavailable",
	} {
		require.NotContains(t, text, secret, "failure text %q leaks %q", text, secret)
	}
	return f
}

func TestSenderDelivers(t *testing.T) {
	t.Parallel()
	b := setupSender(t)

	require.NoError(t, b.sender.Send(t.Context(), b.msg))

	// Send returns only after the server has accepted DATA, which is when
	// the test server stores the message: no waiting needed.
	msgs := b.srv.Messages()
	require.Len(t, msgs, 1)
	got := msgs[0]

	require.Equal(t, "jobs@"+testDomain, got.From)
	require.Equal(t, []string{"ada@example.com"}, got.To)
	require.Equal(t, b.msg.MessageID, got.MessageID)
	require.NotNil(t, got.Parsed, "the server could not parse the message")
	h := got.Parsed.Header

	require.Equal(t, "<confirmation.0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e@"+testDomain+">", h.Get("Message-Id"))

	from, err := h.AddressList("From")
	require.NoError(t, err)
	require.Equal(t, []*netmail.Address{testFrom}, from)
	to, err := h.AddressList("To")
	require.NoError(t, err)
	require.Equal(t, []*netmail.Address{{Name: "Ada Lovelace", Address: "ada@example.com"}}, to)

	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "We received your application: Backend Engineer", subject)
	require.NotEmpty(t, h.Get("Date"))

	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	require.NotEmpty(t, params["boundary"])

	parts := map[string]string{}
	var order []string
	mr := multipart.NewReader(got.Parsed.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // undoes quoted-printable transfer encoding
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		partType, partParams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "utf-8", strings.ToLower(partParams["charset"]), "charset of %s", partType)
		body, err := io.ReadAll(p)
		require.NoError(t, err)
		require.NotContains(t, parts, partType, "two %s parts", partType)
		parts[partType] = normaliseNewlines(string(body))
		order = append(order, partType)
	}
	// Readers show the last alternative they understand: HTML goes last.
	require.Equal(t, []string{"text/plain", "text/html"}, order)
	require.Equal(t, normaliseNewlines(b.msg.Text), parts["text/plain"])
	require.Equal(t, normaliseNewlines(b.msg.HTML), parts["text/html"])
}

// normaliseNewlines undoes the CRLF line endings SMTP gives every line.
func normaliseNewlines(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

func TestSenderSameMessageIDOnResend(t *testing.T) {
	t.Parallel()
	b := setupSender(t)

	require.NoError(t, b.sender.Send(t.Context(), b.msg))
	again, err := mail.Confirmation(fixedConfirmation(), b.sender.Domain())
	require.NoError(t, err)
	require.NoError(t, b.sender.Send(t.Context(), again))

	require.Equal(t, map[string]int{b.msg.MessageID: 2}, b.srv.CountByMessageID())
}

func TestSenderTemporaryReply(t *testing.T) {
	t.Parallel()
	b := setupSender(t)
	b.srv.Refuse(func(string) *smtp.SMTPError { return testkit.TempFailure() })

	err := b.sender.Send(t.Context(), b.msg)
	requireFailure(t, err, false, 451)
	require.Empty(t, b.srv.Messages())
}

func TestSenderPermanentReply(t *testing.T) {
	t.Parallel()
	b := setupSender(t)
	b.srv.Refuse(func(string) *smtp.SMTPError { return testkit.PermFailure() })

	err := b.sender.Send(t.Context(), b.msg)
	requireFailure(t, err, true, 550)
	require.Empty(t, b.srv.Messages())
}

func TestSenderRefuseThenAccept(t *testing.T) {
	t.Parallel()
	b := setupSender(t)
	b.srv.Refuse(func(string) *smtp.SMTPError { return testkit.TempFailure() })
	requireFailure(t, b.sender.Send(t.Context(), b.msg), false, 451)

	b.srv.Refuse(nil)
	require.NoError(t, b.sender.Send(t.Context(), b.msg))
	require.Equal(t, map[string]int{b.msg.MessageID: 1}, b.srv.CountByMessageID())
}

func TestSenderConnectionRefused(t *testing.T) {
	t.Parallel()

	// A port that was free a moment ago: nothing listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	sender := newSender(t, "127.0.0.1", port, 5*time.Second)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)

	err = sender.Send(t.Context(), msg)
	requireFailure(t, err, false, 0)
	require.NotContains(t, err.Error(), "timeout")
}

// silentServer accepts TCP connections and never says a word, until the
// test ends.
func silentServer(t *testing.T) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	addr := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", addr.Port
}

func TestSenderTimeoutWhenServerNeverGreets(t *testing.T) {
	t.Parallel()
	host, port := silentServer(t)
	sender := newSender(t, host, port, 300*time.Millisecond)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)

	start := time.Now()
	err = sender.Send(t.Context(), msg)
	elapsed := time.Since(start)

	requireFailure(t, err, false, 0)
	require.Contains(t, err.Error(), "timeout")
	require.GreaterOrEqual(t, elapsed, 250*time.Millisecond, "gave up before the timeout")
	require.Less(t, elapsed, 2*time.Second, "Timeout did not bound the wait for the greeting")
}

func TestNewSenderRejectsBadConfig(t *testing.T) {
	t.Parallel()

	for _, mode := range []string{"none", "starttls", "tls"} {
		_, err := mail.NewSender(mail.SMTPConfig{Host: "localhost", Port: 25, TLS: mode, From: testFrom, Timeout: time.Second})
		require.NoError(t, err, "TLS mode %q", mode)
	}
	for _, mode := range []string{"", "ssl", "STARTTLS", "plain"} {
		_, err := mail.NewSender(mail.SMTPConfig{Host: "localhost", Port: 25, TLS: mode, From: testFrom, Timeout: time.Second})
		require.Error(t, err, "TLS mode %q", mode)
		require.Contains(t, err.Error(), "TLS mode")
	}

	_, err := mail.NewSender(mail.SMTPConfig{
		Host: "localhost", Port: 25, TLS: "none", Timeout: time.Second,
		From: &netmail.Address{Address: "no-domain"},
	})
	require.Error(t, err)
}

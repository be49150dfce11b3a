package devmail_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/devmail"
)

// bundle is a running catcher and what it printed.
type bundle struct {
	catcher *devmail.Catcher
	log     *lockedBuffer
}

func setup(t *testing.T, opts *devmail.Opts) bundle {
	t.Helper()
	if opts == nil {
		opts = &devmail.Opts{}
	}
	log := &lockedBuffer{}
	opts.SMTPAddr = "127.0.0.1:0"
	opts.MailboxAddr = "127.0.0.1:0"
	opts.Log = log
	c, err := devmail.Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return bundle{catcher: c, log: log}
}

// send delivers msg over SMTP with the standard library's client.
func (b bundle) send(t *testing.T, to string, msg string) {
	t.Helper()
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	require.NoError(t, smtp.SendMail(b.catcher.SMTPAddr().String(), nil, "no-reply@intake.localhost", []string{to}, []byte(msg)))
}

// get fetches a mailbox page.
func (b bundle) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(b.catcher.MailboxURL() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// simple is a plain-text message with the given subject and Message-ID.
func simple(subject, id string) string {
	return fmt.Sprintf("From: Intake <no-reply@intake.localhost>\nTo: ada@example.com\nSubject: %s\nMessage-ID: <%s>\n\nHello.\n", subject, id)
}

// confirmation is shaped like the worker's email: multipart/alternative,
// quoted-printable text, base64 HTML, an RFC 2047 encoded subject.
const confirmation = `From: "Intake" <no-reply@intake.localhost>
To: "Ada Lovelace" <ada@example.com>
Subject: =?UTF-8?q?We_received_your_application:_Backend_engineer_(Go)_=E2=80=93_caf=C3=A9?=
Message-ID: <confirmation.0190@intake.localhost>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Hello Ada,

Thank you for applying for "Backend engineer (Go)". A long line that is soft=
 wrapped.
--b1
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

PHA+SGVsbG8gPHN0cm9uZz5BZGE8L3N0cm9uZz48L3A+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0
Pg==
--b1--
`

func TestCatch(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 9, 30, 15, 0, time.Local)
	b := setup(t, &devmail.Opts{Now: func() time.Time { return at }})

	b.send(t, "ada@example.com", confirmation)

	msgs := b.catcher.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, 1, m.N)
	require.Equal(t, at, m.At)
	require.Equal(t, "no-reply@intake.localhost", m.From)
	require.Equal(t, []string{"ada@example.com"}, m.To)
	require.Equal(t, "<confirmation.0190@intake.localhost>", m.MessageID)
	require.Equal(t, "We received your application: Backend engineer (Go) – café", m.Subject)
	require.Equal(t, "Hello Ada,\r\n\r\nThank you for applying for \"Backend engineer (Go)\". A long line that is soft wrapped.", m.Text)
	require.Equal(t, "<p>Hello <strong>Ada</strong></p><script>alert(1)</script>", m.HTML)
	require.Empty(t, m.ParseErr)
	require.Equal(t, "Subject", m.Headers[2].Name, "headers keep their order")

	require.Equal(t,
		`09:30:15 <confirmation.0190@intake.localhost> to ada@example.com "We received your application: Backend engineer (Go) – café" `+
			b.catcher.MailboxURL()+"/messages/1\n",
		b.log.String())
}

func TestListPage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	resp, body := b.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "No mail yet.")

	b.send(t, "ada@example.com", simple("First", "one@test"))
	b.send(t, "grace@example.com", simple("Second", "two@test"))

	resp, body = b.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	require.Contains(t, body, `<a href="/messages/1">First</a>`)
	require.Contains(t, body, `<a href="/messages/2">Second</a>`)
	require.Contains(t, body, "grace@example.com")
	require.Less(t, strings.Index(body, "Second"), strings.Index(body, "First"), "newest first")
	require.NotContains(t, body, "http://", "no external assets")
	require.NotContains(t, body, "https://", "no external assets")
}

func TestMessagePage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.send(t, "ada@example.com", confirmation)

	resp, body := b.get(t, "/messages/1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "We received your application: Backend engineer (Go) – café")
	require.Contains(t, body, "A long line that is soft wrapped.")
	require.Contains(t, body, `<iframe sandbox src="/messages/1/html"`)
	require.NotContains(t, body, "<script>", "the HTML body is never inlined")

	resp, body = b.get(t, "/messages/1/html")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "default-src 'none'; style-src 'unsafe-inline'", resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "<p>Hello <strong>Ada</strong></p><script>alert(1)</script>", body,
		"served as sent: the policy and the sandbox keep its script from running")

	resp, body = b.get(t, "/messages/1/raw")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, body, "Content-Transfer-Encoding: base64")
}

func TestMessagePageEscapes(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	hostile := `<script>alert("x")</script>`
	b.send(t, "ada@example.com", simple(hostile, `<img src=x onerror=alert(1)>@test`))

	for _, path := range []string{"/", "/messages/1"} {
		resp, body := b.get(t, path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.NotContains(t, body, "<script>", path)
		require.NotContains(t, body, "<img", path)
		require.Contains(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", path)
	}
	_, body := b.get(t, "/messages/1")
	require.Contains(t, body, "&lt;img src=x onerror=alert(1)&gt;@test", "headers are escaped too")

	resp, _ := b.get(t, "/messages/1/html")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "a text-only message has no HTML body")
}

func TestCapacity(t *testing.T) {
	t.Parallel()
	b := setup(t, &devmail.Opts{Capacity: 2})
	for i := 1; i <= 3; i++ {
		b.send(t, "ada@example.com", simple(fmt.Sprintf("Message %d", i), fmt.Sprintf("%d@test", i)))
	}

	msgs := b.catcher.Messages()
	require.Len(t, msgs, 2)
	require.Equal(t, []int{3, 2}, []int{msgs[0].N, msgs[1].N}, "the oldest is dropped")

	resp, body := b.get(t, "/messages/1")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, "keeps the last 2")
	resp, _ = b.get(t, "/messages/3")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, path := range []string{"/messages/4", "/messages/0", "/messages/x", "/nope"} {
		resp, _ = b.get(t, path)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}

func TestOnlyLocalHostNames(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for host, want := range map[string]int{
		"":                     http.StatusOK, // the listener's IP literal
		"localhost:8025":       http.StatusOK,
		"mail.localhost:8025":  http.StatusOK,
		"[::1]:8025":           http.StatusOK,
		"rebound.example:8025": http.StatusForbidden,
		"rebound.example":      http.StatusForbidden,
	} {
		req, err := http.NewRequest(http.MethodGet, b.catcher.MailboxURL()+"/", nil)
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "Host %q", host)
	}
}

func TestMalformedMessageIsKept(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.send(t, "ada@example.com", "Subject: Broken\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\npart without an end")

	m := b.catcher.Messages()[0]
	require.Equal(t, "Broken", m.Subject)
	require.Equal(t, "part without an end", strings.TrimSpace(m.Text))
	require.NotEmpty(t, m.ParseErr)
	resp, body := b.get(t, "/messages/1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "Could not read this message completely")
}

// lockedBuffer collects the catcher's output, which its SMTP sessions write
// concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Close right after Start returns even when the servers' goroutines have
// not started serving yet (go-smtp alone would miss the listener).
func TestCloseRightAfterStart(t *testing.T) {
	t.Parallel()
	for range 50 {
		c, err := devmail.Start(&devmail.Opts{SMTPAddr: "127.0.0.1:0", MailboxAddr: "127.0.0.1:0"})
		require.NoError(t, err)
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not return")
		}
		require.NoError(t, c.Close(), "a second Close is harmless")
	}
}

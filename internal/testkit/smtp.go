package testkit

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPServer is a real SMTP server (go-smtp) on a loopback port that keeps
// every message it accepts. Its answers can be scripted with Refuse, and it
// can be taken down and brought back with Stop and Start.
type SMTPServer struct {
	Addr string // host:port
	Host string
	Port int

	server *smtp.Server
	down   atomic.Bool

	mu       sync.Mutex
	messages []SMTPMessage
	refuse   func(rcpt string) *smtp.SMTPError
	delay    time.Duration
	reply    time.Duration
	onAccept func()
}

// SMTPMessage is one accepted message.
type SMTPMessage struct {
	From      string
	To        []string
	MessageID string // without angle brackets
	Raw       []byte
	Parsed    *mail.Message
}

// StartSMTP starts a server and stops it when the test ends.
func StartSMTP(tb testing.TB) *SMTPServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtp listen: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &SMTPServer{Addr: addr.String(), Host: "127.0.0.1", Port: addr.Port}
	s.server = smtp.NewServer(backend{s})
	s.server.Domain = "smtp.test"
	s.server.AllowInsecureAuth = true
	s.server.ReadTimeout = 10 * time.Second
	s.server.WriteTimeout = 10 * time.Second
	go func() { _ = s.server.Serve(&gatedListener{Listener: ln, down: &s.down}) }()
	tb.Cleanup(func() { _ = s.server.Close() })
	return s
}

// Stop takes the server down: every new connection is closed before the
// greeting, as by a server that crashed. The port stays bound, so no other
// test's server can take it meanwhile.
func (s *SMTPServer) Stop() { s.down.Store(true) }

// Start brings a stopped server back.
func (s *SMTPServer) Start() { s.down.Store(false) }

// gatedListener drops connections while the server is down.
type gatedListener struct {
	net.Listener
	down *atomic.Bool
}

func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.down.Load() {
			return c, err
		}
		_ = c.Close()
	}
}

// Refuse scripts the answer to each RCPT: return nil to accept, or an
// error such as TempFailure() or PermFailure(). nil restores accepting all.
func (s *SMTPServer) Refuse(fn func(rcpt string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = fn
}

// TempFailure is a 451 reply.
func TempFailure() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
}

// PermFailure is a 550 reply.
func PermFailure() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
}

// SetDelay makes the server take d to accept each message's data, so that
// work is in flight long enough to crash in the middle of it.
func (s *SMTPServer) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetReplyDelay makes the server wait d before each reply it can hold back:
// the greeting and the answers to MAIL, RCPT, the message's data, RSET and
// QUIT (a slow server; EHLO and NOOP are answered by go-smtp itself).
func (s *SMTPServer) SetReplyDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = d
}

// OnAccept calls fn for every message the server keeps, just before it
// answers 250: the moment a test can break something between the server's
// acceptance and the sender's record of it.
func (s *SMTPServer) OnAccept(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onAccept = fn
}

func (s *SMTPServer) replyDelay() {
	s.mu.Lock()
	d := s.reply
	s.mu.Unlock()
	time.Sleep(d)
}

// Messages returns a copy of every accepted message, in order.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.messages...)
}

// CountByMessageID counts accepted messages per Message-ID.
func (s *SMTPServer) CountByMessageID() map[string]int {
	counts := map[string]int{}
	for _, m := range s.Messages() {
		counts[m.MessageID]++
	}
	return counts
}

// WaitMessages waits until at least n messages were accepted.
func (s *SMTPServer) WaitMessages(tb testing.TB, n int, timeout time.Duration) []SMTPMessage {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			tb.Fatalf("SMTP server got %d messages, want %d, within %s", len(msgs), n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type backend struct{ s *SMTPServer }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	b.s.replyDelay()
	return &session{s: b.s}, nil
}

type session struct {
	s    *SMTPServer
	from string
	to   []string
}

func (x *session) Reset() {
	x.s.replyDelay()
	x.from, x.to = "", nil
}

func (x *session) Logout() error {
	x.s.replyDelay()
	return nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.s.replyDelay()
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.replyDelay()
	x.s.mu.Lock()
	refuse := x.s.refuse
	x.s.mu.Unlock()
	if refuse != nil {
		if err := refuse(to); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	delay := x.s.delay + x.s.reply
	x.s.mu.Unlock()
	time.Sleep(delay)
	msg := SMTPMessage{From: x.from, To: x.to, Raw: raw}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		msg.Parsed = parsed
		id := parsed.Header.Get("Message-Id")
		if len(id) > 2 && id[0] == '<' && id[len(id)-1] == '>' {
			id = id[1 : len(id)-1]
		}
		msg.MessageID = id
	}
	x.s.mu.Lock()
	x.s.messages = append(x.s.messages, msg)
	onAccept := x.s.onAccept
	x.s.mu.Unlock()
	if onAccept != nil {
		onAccept()
	}
	return nil
}

// Env returns the worker environment that points at this server.
func (s *SMTPServer) Env() map[string]string {
	return map[string]string{
		"INTAKE_SMTP_HOST": s.Host,
		"INTAKE_SMTP_PORT": strconv.Itoa(s.Port),
		"INTAKE_SMTP_TLS":  "none",
	}
}

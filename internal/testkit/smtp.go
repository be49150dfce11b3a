package testkit

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPServer is a real SMTP server (go-smtp) on a loopback port that keeps
// every message it accepts. Its answers can be scripted with Refuse, it
// can be taken down and brought back with Stop and Start, and it can drop
// a connection at any stage of the exchange (DropAt). It counts the
// connections it accepts, how many were open at once, and the commands.
type SMTPServer struct {
	Addr string // host:port
	Host string
	Port int

	server *smtp.Server
	down   atomic.Bool
	// closed ends at the test's end, and with it every reply delay still
	// running, so no session goroutine outlives the test (goleak).
	closed chan struct{}

	mu       sync.Mutex
	messages []SMTPMessage
	refuse   func(rcpt string) *smtp.SMTPError
	delay    time.Duration
	reply    time.Duration
	onAccept func()
	drops    map[SMTPStage]int
	authUser string
	authPass string
	conns    map[*tapConn]struct{}
	dials    int
	maxOpen  int
	commands map[string]int
}

// SMTPMessage is one accepted message.
type SMTPMessage struct {
	From      string
	To        []string
	MessageID string // without angle brackets
	Raw       []byte
	Parsed    *mail.Message
}

// Parts returns a multipart/alternative message's parts by content type,
// decoded. It reads Raw, so it may be called more than once.
func (m SMTPMessage) Parts(tb testing.TB) map[string]string {
	tb.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		tb.Fatalf("parse message: %v", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		tb.Fatalf("message is %q (%v), want multipart/alternative", mediaType, err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			tb.Fatalf("message part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, err := io.ReadAll(p) // multipart decodes quoted-printable itself
		if err != nil {
			tb.Fatalf("message part: %v", err)
		}
		parts[ct] = string(b)
	}
}

// StartSMTP starts a server and stops it when the test ends.
func StartSMTP(tb testing.TB) *SMTPServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtp listen: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &SMTPServer{Addr: addr.String(), Host: "127.0.0.1", Port: addr.Port,
		drops: map[SMTPStage]int{}, conns: map[*tapConn]struct{}{}, commands: map[string]int{}, closed: make(chan struct{})}
	s.server = smtp.NewServer(backend{s})
	s.server.Domain = "smtp.test"
	s.server.AllowInsecureAuth = true
	s.server.ReadTimeout = 10 * time.Second
	s.server.WriteTimeout = 10 * time.Second
	go func() { _ = s.server.Serve(&gatedListener{Listener: ln, s: s}) }()
	tb.Cleanup(func() {
		close(s.closed)
		_ = s.server.Close()
	})
	return s
}

// Stop takes the server down, as a crash would: the open connections (a
// sender's pooled ones too) are closed, and every new one is closed before
// the greeting. The port stays bound, so no other test's server can take
// it meanwhile.
func (s *SMTPServer) Stop() {
	s.down.Store(true)
	s.DropConnections()
}

// Start brings a stopped server back.
func (s *SMTPServer) Start() { s.down.Store(false) }

// gatedListener drops connections while the server is down, and watches
// the others (tapConn).
type gatedListener struct {
	net.Listener
	s *SMTPServer
}

func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		if l.s.down.Load() {
			_ = c.Close()
			continue
		}
		tc := l.s.track(c)
		if l.s.takeDrop(StageGreeting) {
			_ = tc.Close()
			continue
		}
		return tc, nil
	}
}

// SMTPStage is a point of the exchange where the server can drop the
// connection (DropAt).
type SMTPStage string

const (
	// StageGreeting: accepted, closed before the 220 greeting.
	StageGreeting SMTPStage = "greeting"
	// StageEHLO, StageAuth, StageMail, StageRcpt, StageData: the command
	// received, closed before it is answered.
	StageEHLO SMTPStage = "EHLO"
	StageAuth SMTPStage = "AUTH"
	StageMail SMTPStage = "MAIL"
	StageRcpt SMTPStage = "RCPT"
	StageData SMTPStage = "DATA"
	// StageBody: closed on the message's first bytes; the server never
	// sees its end.
	StageBody SMTPStage = "body"
	// StageFinalDot: the whole message and its final dot arrived; closed
	// before the server takes it.
	StageFinalDot SMTPStage = "final dot"
	// StageAccepted: the server keeps the message (it counts in Messages),
	// then closes before its 250 reply: the ambiguous case.
	StageAccepted SMTPStage = "accepted"
	// StageAfterReply: closed just after the 250 reply to the final dot,
	// so the next command on the connection finds it gone.
	StageAfterReply SMTPStage = "after reply"
)

// verbStages are the commands DropAt can stop at.
var verbStages = map[string]SMTPStage{
	"EHLO": StageEHLO, "HELO": StageEHLO, "AUTH": StageAuth,
	"MAIL": StageMail, "RCPT": StageRcpt, "DATA": StageData,
}

// DropAt makes the server close the next connection that reaches stage,
// once per call.
func (s *SMTPServer) DropAt(stage SMTPStage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops[stage]++
}

func (s *SMTPServer) takeDrop(stage SMTPStage) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drops[stage] == 0 {
		return false
	}
	s.drops[stage]--
	return true
}

// DropConnections closes every open connection, as a server's idle
// timeout would.
func (s *SMTPServer) DropConnections() {
	s.mu.Lock()
	conns := make([]*tapConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// RequireAuth makes the server offer AUTH CRAM-MD5 (the mechanism go-mail
// uses without TLS) and refuse MAIL before a login as user with pass.
func (s *SMTPServer) RequireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authUser, s.authPass = user, pass
}

// Dials is how many connections the server accepted.
func (s *SMTPServer) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials
}

// MaxOpen is the most connections that were open at once.
func (s *SMTPServer) MaxOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

// Open is how many connections are open now.
func (s *SMTPServer) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Commands is how many commands verb (QUIT, RSET, MAIL...) the server
// received.
func (s *SMTPServer) Commands(verb string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands[verb]
}

// WaitFor waits until cond (about the server: Open, Commands...) holds.
func (s *SMTPServer) WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("SMTP server: %s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *SMTPServer) track(c net.Conn) *tapConn {
	tc := &tapConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[tc] = struct{}{}
	s.dials++
	s.maxOpen = max(s.maxOpen, len(s.conns))
	return tc
}

// tapConn follows the client's commands on one connection (a line-based
// reading of the plain-text stream, enough for a client that waits for
// each reply) to drop it at a stage, and counts them.
type tapConn struct {
	net.Conn
	s         *SMTPServer
	closeOnce sync.Once

	mu        sync.Mutex
	line      []byte // the command line read so far
	dataAsked bool   // DATA sent, its reply not yet written
	inData    bool   // the message is coming
	bodySeen  bool
	tail      []byte // the message's last bytes, to find its end
	replyNext bool   // the next write answers the final dot
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		drop := c.watch(p[:n])
		c.mu.Unlock()
		if drop {
			_ = c.Close()
			return 0, net.ErrClosed
		}
	}
	return n, err
}

var endOfData = []byte("\r\n.\r\n")

// watch follows b from the client and says whether to drop the connection
// before the server sees it.
func (c *tapConn) watch(b []byte) bool {
	for len(b) > 0 {
		if c.inData {
			if !c.bodySeen {
				c.bodySeen = true
				if c.s.takeDrop(StageBody) {
					return true
				}
			}
			buf := append(c.tail, b...)
			i := bytes.Index(buf, endOfData)
			if i < 0 {
				c.tail = append([]byte(nil), buf[max(0, len(buf)-len(endOfData)+1):]...)
				return false
			}
			b = b[i+len(endOfData)-len(c.tail):]
			c.inData, c.bodySeen, c.tail = false, false, nil
			if c.s.takeDrop(StageFinalDot) {
				return true
			}
			c.replyNext = true
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.line = append(c.line, b...)
			return false
		}
		c.line = append(c.line, b[:i+1]...)
		b = b[i+1:]
		verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(string(c.line))), " ")
		c.line = c.line[:0]
		c.s.mu.Lock()
		c.s.commands[verb]++
		c.s.mu.Unlock()
		if verb == "DATA" {
			c.dataAsked = true
		}
		if stage, ok := verbStages[verb]; ok && c.s.takeDrop(stage) {
			return true
		}
	}
	return false
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	if c.dataAsked {
		c.dataAsked = false
		// The message follows a 354 only ("\r\n" before its first line
		// finds a message with no line at all).
		c.inData = bytes.HasPrefix(p, []byte("354"))
		c.tail = []byte("\r\n")
	}
	drop := c.replyNext && c.s.takeDrop(StageAfterReply)
	c.replyNext = false
	c.mu.Unlock()
	if drop {
		_ = c.Close()
	}
	return n, err
}

func (c *tapConn) Close() error {
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
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
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.closed:
	}
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

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.replyDelay()
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s      *SMTPServer
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (x *session) AuthMechanisms() []string {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.s.authUser == "" {
		return nil
	}
	return []string{"CRAM-MD5"}
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	if mech != "CRAM-MD5" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	return &cramMD5Server{x: x, user: x.s.authUser, pass: x.s.authPass,
		challenge: "<" + strconv.FormatInt(time.Now().UnixNano(), 10) + "@smtp.test>"}, nil
}

// cramMD5Server is the server side of RFC 2195: a challenge, then the
// user's name and the HMAC-MD5 of the challenge keyed with the password.
type cramMD5Server struct {
	x                     *session
	user, pass, challenge string
	asked                 bool
}

func (c *cramMD5Server) Next(response []byte) ([]byte, bool, error) {
	if !c.asked {
		c.asked = true
		return []byte(c.challenge), false, nil
	}
	user, digest, _ := strings.Cut(string(response), " ")
	mac := hmac.New(md5.New, []byte(c.pass))
	mac.Write([]byte(c.challenge))
	if user != c.user || !hmac.Equal([]byte(digest), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return nil, true, smtp.ErrAuthFailed
	}
	c.x.authed = true
	return nil, true, nil
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
	x.s.mu.Lock()
	needAuth := x.s.authUser != ""
	x.s.mu.Unlock()
	if needAuth && !x.authed {
		return smtp.ErrAuthRequired
	}
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
	if x.s.takeDrop(StageAccepted) {
		_ = x.conn.Conn().Close()
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

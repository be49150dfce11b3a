package mail

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// SMTPConfig says how to reach the SMTP server.
type SMTPConfig struct {
	Host     string
	Port     int
	TLS      string // "none", "starttls" or "tls"
	Username string
	Password string
	From     *mail.Address
	// Timeout bounds the dial and each SMTP command (the wait for its
	// reply); the context given to Send bounds the whole exchange.
	Timeout time.Duration
	// PoolSize is how many connections are kept open between sends for the
	// next ones (zero: none, every message has a connection of its own).
	// The worker keeps one per email worker, so it never holds more
	// connections than it has sends running.
	PoolSize int
	// IdleTimeout closes, with QUIT, a pooled connection left unused this
	// long (zero: DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxMessages is how many messages one connection carries before it is
	// closed with QUIT (zero: DefaultMaxMessages).
	MaxMessages int
}

// The pool's defaults: under the idle timeouts servers commonly set (RFC
// 5321 asks for at least five minutes, busy servers cut sooner) and the
// per-connection message limits of hosted relays.
const (
	DefaultIdleTimeout = 30 * time.Second
	DefaultMaxMessages = 100
)

// Sender sends messages over SMTP, keeping up to PoolSize connections open
// between sends. It is safe for concurrent use; Close ends it.
type Sender struct {
	cfg    SMTPConfig
	domain string

	mu     sync.Mutex
	idle   []*smtpConn // the most recently used last
	closed bool
	// expiries counts the idle timers that have not been stopped and whose
	// expire has not returned, so Close can wait for them.
	expiries sync.WaitGroup
	opened   atomic.Int64
}

// smtpConn is one connection past its greeting, EHLO, STARTTLS and AUTH,
// ready for a transaction; one send at a time owns it.
type smtpConn struct {
	client *smtp.Client
	conn   *contextConn
	sent   int         // messages handed over on it
	timer  *time.Timer // while idle: closes it after IdleTimeout
}

// NewSender checks cfg and returns a sender. It does not connect.
func NewSender(cfg SMTPConfig) (*Sender, error) {
	at := strings.LastIndexByte(cfg.From.Address, '@')
	if at < 0 {
		return nil, fmt.Errorf("sender address %q has no domain", cfg.From.Address)
	}
	switch cfg.TLS {
	case "none", "starttls", "tls":
	default:
		return nil, fmt.Errorf("unknown TLS mode %q", cfg.TLS)
	}
	if cfg.PoolSize < 0 {
		return nil, fmt.Errorf("negative pool size %d", cfg.PoolSize)
	}
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxMessages = cmp.Or(cfg.MaxMessages, DefaultMaxMessages)
	return &Sender{cfg: cfg, domain: cfg.From.Address[at+1:]}, nil
}

// Domain is the sender's domain, used in Message-IDs.
func (s *Sender) Domain() string { return s.domain }

// Opened is how many connections the sender has opened (through AUTH), for
// a metric: next to the number of sends it shows how well connections are
// reused, and a server that closes them early.
func (s *Sender) Opened() int64 { return s.opened.Load() }

// errStale is a pooled connection found dead at MAIL, before the server
// could have taken anything of the message.
var errStale = errors.New("pooled connection dead before MAIL was answered")

// Send delivers m, on a pooled connection when one is idle, else on a new
// one. The whole exchange ends when ctx ends: go-mail takes no context
// after the dial, so the connection is closed when ctx is done. A pooled
// connection that fails at MAIL (most often: the server closed it while it
// sat idle) is dropped and the message sent once more on a new connection, within
// the same ctx: nothing of it reached the server. The error, when there is
// one, is a *Failure: it says whether to retry and carries the SMTP code,
// never the server's text.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.FromFormat(s.cfg.From.Name, s.cfg.From.Address); err != nil {
		return &Failure{Permanent: true, cause: "invalid sender"}
	}
	if err := msg.AddToFormat(m.ToName, m.ToAddress); err != nil {
		return &Failure{Permanent: true, cause: "invalid recipient"}
	}
	for _, to := range m.AlsoTo {
		if err := msg.AddTo(to); err != nil {
			return &Failure{Permanent: true, cause: "invalid recipient"}
		}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)

	rcpts := append([]string{m.ToAddress}, m.AlsoTo...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c := s.take(); c != nil {
		c.conn.arm(ctx)
		err := s.deliver(ctx, c, rcpts, msg, true)
		if !errors.Is(err, errStale) {
			return err
		}
	}
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	return s.deliver(ctx, c, rcpts, msg, false)
}

// dial connects: go-mail does the greeting, EHLO, STARTTLS and AUTH. The
// connection is tied to ctx until it is released.
func (s *Sender) dial(ctx context.Context) (*smtpConn, error) {
	var conn *contextConn
	client, err := gomail.NewClient(s.cfg.Host, s.options(ctx, &conn)...)
	if err != nil {
		return nil, &Failure{cause: "client setup"}
	}
	smtpClient, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		return nil, classify(err, "connect")
	}
	s.opened.Add(1)
	return &smtpConn{client: smtpClient, conn: conn}, nil
}

// deliver runs one transaction (MAIL, RCPT for each of rcpts, DATA) on c, then hands c back
// to the pool or closes it. The transaction is Intake's, not go-mail's, so
// the wait for the final dot's reply can be told apart from the other
// commands'. On a reused connection, a failed MAIL returns errStale.
func (s *Sender) deliver(ctx context.Context, c *smtpConn, rcpts []string, msg *gomail.Msg, reused bool) error {
	if err := c.client.Mail(s.cfg.From.Address); err != nil {
		if reused && ctx.Err() == nil {
			_ = c.client.Close()
			return errStale
		}
		s.release(ctx, c, err, false)
		return classify(err, "mail")
	}
	for _, to := range rcpts {
		if err := c.client.Rcpt(to); err != nil {
			s.release(ctx, c, err, true)
			return classify(err, "rcpt")
		}
	}
	data, err := c.client.Data()
	if err != nil {
		s.release(ctx, c, err, true)
		return classify(err, "data")
	}
	if _, err := msg.WriteTo(data); err != nil {
		// Cut mid-message: the server cannot take a message without its
		// final dot.
		_ = c.client.Close()
		return classify(err, "data")
	}
	// The reply to the final dot is where a timeout is ambiguous: the
	// server may have taken the message, and a retry would send a second
	// copy. RFC 5321 gives it ten minutes; it gets until the send's
	// deadline, not one INTAKE_SMTP_TIMEOUT.
	c.conn.untilDeadline(true)
	err = data.Close()
	c.conn.untilDeadline(false)
	c.sent++
	if err != nil {
		s.release(ctx, c, err, false)
		f := classify(err, "data")
		f.MaybeAccepted = !isReply(err)
		return f
	}
	// Accepted. Whatever happens to the connection from here changes
	// nothing: the message is delivered, and must count as sent.
	s.release(ctx, c, nil, false)
	return nil
}

// release ends a send's use of c, whose transaction failed with err (nil:
// it succeeded). c goes back to the pool only when the server and Intake
// agree where they are: after a reply, not after a broken connection, a
// timeout or a 421 (the server is closing it). A transaction left open on
// the server (a refused RCPT or DATA) is reset first. A connection the pool
// has no room for, or that carried MaxMessages, is closed with QUIT, within
// ctx.
func (s *Sender) release(ctx context.Context, c *smtpConn, err error, open bool) {
	var reply *textproto.Error
	if err != nil && (!errors.As(err, &reply) || reply.Code == 421) {
		_ = c.client.Close()
		return
	}
	if open && c.client.Reset() != nil {
		_ = c.client.Close()
		return
	}
	if !c.conn.disarm() {
		// ctx ended meanwhile and closed the connection.
		_ = c.client.Close()
		return
	}
	s.mu.Lock()
	keep := !s.closed && len(s.idle) < s.cfg.PoolSize && c.sent < s.cfg.MaxMessages
	if keep {
		s.expiries.Add(1)
		c.timer = time.AfterFunc(s.cfg.IdleTimeout, func() { s.expire(c) })
		s.idle = append(s.idle, c)
	}
	s.mu.Unlock()
	if !keep {
		c.conn.arm(ctx)
		c.quit()
	}
}

// take returns the most recently used idle connection, or nil. Taking the
// warmest one lets the others reach their idle timeout when sends slow down.
func (s *Sender) take() *smtpConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.idle)
	if n == 0 {
		return nil
	}
	c := s.idle[n-1]
	s.idle = s.idle[:n-1]
	if c.timer.Stop() {
		s.expiries.Done()
	}
	return c
}

// expire closes c after its idle timeout, unless a send took it meanwhile.
func (s *Sender) expire(c *smtpConn) {
	defer s.expiries.Done()
	s.mu.Lock()
	i := slices.Index(s.idle, c)
	if i >= 0 {
		s.idle = slices.Delete(s.idle, i, i+1)
	}
	s.mu.Unlock()
	if i >= 0 {
		c.quit()
	}
}

// Close ends the pool: idle connections are closed with QUIT (each within
// Timeout), and connections released later are closed instead of kept.
// Call it once no send is running; the sender still works afterwards, one
// connection per message.
func (s *Sender) Close() {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	for _, c := range idle {
		if c.timer.Stop() {
			s.expiries.Done()
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Go(c.quit)
	}
	wg.Wait()
	s.expiries.Wait()
}

// quit says QUIT and closes c; each command waits Timeout at most for its
// reply (see contextConn), and the send's context, when armed, bounds it.
func (c *smtpConn) quit() {
	_ = c.client.Quit()
	_ = c.client.Close()
}

func isReply(err error) bool {
	var reply *textproto.Error
	return errors.As(err, &reply)
}

// options configure go-mail for one send; the connection its dialer makes
// is stored in *conn.
func (s *Sender) options(ctx context.Context, conn **contextConn) []gomail.Option {
	tlsConfig := &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithHELO(s.domain),
		gomail.WithTLSConfig(tlsConfig),
		gomail.WithDialContextFunc(s.dialer(ctx, tlsConfig, conn)),
	}
	switch s.cfg.TLS {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
		if s.cfg.TLS == "tls" {
			// With its own dialer go-mail cannot tell the connection is
			// encrypted, and its auto-discovery would then refuse PLAIN
			// and LOGIN; the dialer below always speaks TLS in this mode.
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5,
				gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
		} else {
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover))
		}
	}
	return opts
}

// dialer connects for one send and ties the connection to sendCtx (see
// contextConn.arm). In "tls" mode it also does the TLS handshake, which
// go-mail leaves to a custom dialer.
func (s *Sender) dialer(sendCtx context.Context, tlsConfig *tls.Config, made **contextConn) gomail.DialContextFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		conn := &contextConn{Conn: raw, timeout: s.cfg.Timeout}
		conn.arm(sendCtx)
		*made = conn
		// The greeting gets one timeout too.
		_ = raw.SetDeadline(time.Now().Add(s.cfg.Timeout))
		if s.cfg.TLS != "tls" {
			return conn, nil
		}
		tlsConn := tls.Client(conn, tlsConfig)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tlsConn, nil
	}
}

// contextConn is a connection closed when the context of the send using it
// ends, that gives every command its own timeout: each write (a command,
// or a piece of the message) moves the deadline to one timeout from now,
// so the reply to it has that long. go-mail's own deadlines, one per stage
// of several commands, are ignored: they would make INTAKE_SMTP_TIMEOUT
// mean a different thing at each stage.
type contextConn struct {
	net.Conn
	timeout time.Duration

	// Set by arm, for the send that owns the connection.
	stop     func() bool
	deadline time.Time // the send's; zero when it has none

	long atomic.Bool // waiting for the final dot's reply
}

// arm ties the connection to a send's ctx: when ctx ends, the connection is
// closed, which ends whatever command is waiting on it, and the final dot's
// reply is waited for until ctx's deadline.
func (c *contextConn) arm(ctx context.Context) {
	c.deadline, _ = ctx.Deadline()
	c.stop = context.AfterFunc(ctx, func() {
		// Drop what is still unsent (the final dot, say) with a reset
		// instead of letting the kernel deliver it after the attempt
		// gave up, when a newer attempt may be sending.
		if tcp, ok := c.Conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		_ = c.Conn.Close()
	})
}

// disarm unties the connection from its send, for the pool. It reports
// false when the send's context ended first, closing the connection.
func (c *contextConn) disarm() bool { return c.stop() }

func (c *contextConn) Write(p []byte) (int, error) {
	d := time.Now().Add(c.timeout)
	if c.long.Load() {
		d = c.deadline // the zero time: no deadline but the context's
	}
	if err := c.Conn.SetDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// untilDeadline makes the writes from now on (and so the replies to them)
// wait until the send's deadline instead of one timeout.
func (c *contextConn) untilDeadline(on bool) { c.long.Store(on) }

func (c *contextConn) SetDeadline(time.Time) error      { return nil }
func (c *contextConn) SetReadDeadline(time.Time) error  { return nil }
func (c *contextConn) SetWriteDeadline(time.Time) error { return nil }

func (c *contextConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// Failure is a failed delivery, reduced to what may be stored and logged.
type Failure struct {
	// Permanent failures (5xx replies) are not retried.
	Permanent bool
	// Code is the SMTP reply code, 0 when the server never replied.
	Code int
	// MaybeAccepted says the whole message, final dot included, was
	// handed over and no reply came: the server may hold it. It is
	// temporary all the same; its retry may be a second copy, with the
	// same Message-ID.
	MaybeAccepted bool
	cause         string
}

func (f *Failure) Error() string {
	class := "temporary"
	if f.Permanent {
		class = "permanent"
	}
	if f.Code != 0 {
		return fmt.Sprintf("smtp %s failure: %s: reply code %d", class, f.cause, f.Code)
	}
	if f.MaybeAccepted {
		return fmt.Sprintf("smtp %s failure: %s: no reply to the final dot, the server may have the message", class, f.cause)
	}
	return fmt.Sprintf("smtp %s failure: %s", class, f.cause)
}

// classify decides whether a send error is worth retrying. A 5xx reply to
// MAIL, RCPT or DATA is permanent; a 5xx while connecting (greeting, EHLO,
// AUTH: the server's or our configuration's problem, not the recipient's),
// 4xx replies, refused connections, timeouts and TLS errors are temporary.
// The reply code is kept, the server's text dropped.
func classify(err error, stage string) *Failure {
	var reply *textproto.Error
	if errors.As(err, &reply) && reply.Code >= 400 && reply.Code < 600 {
		return &Failure{Permanent: reply.Code >= 500 && stage != "connect", Code: reply.Code, cause: stage}
	}
	// A dial timeout matches context.DeadlineExceeded; a server that stops
	// answering trips the connection deadline go-mail sets, which only
	// matches os.ErrDeadlineExceeded; a send cut by its context ends on a
	// closed connection.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return &Failure{cause: stage + ": timeout"}
	}
	return &Failure{cause: stage}
}

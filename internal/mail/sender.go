package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
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
}

// Sender sends messages over SMTP, one connection per message.
type Sender struct {
	cfg    SMTPConfig
	domain string
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
	return &Sender{cfg: cfg, domain: cfg.From.Address[at+1:]}, nil
}

// Domain is the sender's domain, used in Message-IDs.
func (s *Sender) Domain() string { return s.domain }

// Send delivers m. The whole exchange (dial, greeting, EHLO, STARTTLS,
// AUTH, MAIL, RCPT, DATA, QUIT) ends when ctx ends: go-mail takes no context
// after the dial, so the connection is closed when ctx is done. The error,
// when there is one, is a *Failure: it says whether to retry and carries
// the SMTP code, never the server's text.
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var conn *contextConn
	client, err := gomail.NewClient(s.cfg.Host, s.options(ctx, &conn)...)
	if err != nil {
		return &Failure{cause: "client setup"}
	}

	// go-mail connects (greeting, EHLO, STARTTLS, AUTH); the transaction
	// itself is ours, so the wait for the final dot's reply can be told
	// apart from the other commands'.
	smtpClient, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return classify(err, "connect")
	}
	defer smtpClient.Close()
	if err := smtpClient.Mail(s.cfg.From.Address); err != nil {
		return classify(err, "mail")
	}
	for _, to := range append([]string{m.ToAddress}, m.AlsoTo...) {
		if err := smtpClient.Rcpt(to); err != nil {
			return classify(err, "rcpt")
		}
	}
	data, err := smtpClient.Data()
	if err != nil {
		return classify(err, "data")
	}
	if _, err := msg.WriteTo(data); err != nil {
		return classify(err, "data")
	}
	// The reply to the final dot is where a timeout is ambiguous: the
	// server may have taken the message, and a retry would send a second
	// copy. RFC 5321 gives it ten minutes; it gets until the send's
	// deadline, not one INTAKE_SMTP_TIMEOUT.
	conn.untilDeadline(true)
	err = data.Close()
	conn.untilDeadline(false)
	if err != nil {
		return classify(err, "data")
	}
	// Accepted. A failing QUIT after it changes nothing: the message is
	// delivered, and must count as sent.
	_ = smtpClient.Quit()
	return nil
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

// dialer connects for one send and ties the connection to sendCtx: when
// sendCtx ends, the connection is closed, which ends whatever command is
// waiting on it. In "tls" mode it also does the TLS handshake, which go-mail
// leaves to a custom dialer.
func (s *Sender) dialer(sendCtx context.Context, tlsConfig *tls.Config, made **contextConn) gomail.DialContextFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		stop := context.AfterFunc(sendCtx, func() {
			// Drop what is still unsent (the final dot, say) with a reset
			// instead of letting the kernel deliver it after the attempt
			// gave up, when a newer attempt may be sending.
			if tcp, ok := raw.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0)
			}
			_ = raw.Close()
		})
		conn := &contextConn{Conn: raw, stop: stop, timeout: s.cfg.Timeout}
		conn.deadline, _ = sendCtx.Deadline()
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

// contextConn is a connection closed when its send's context ends (closing
// it earlier releases that watch) that gives every command its own timeout:
// each write (a command, or a piece of the message) moves the deadline to
// one timeout from now, so the reply to it has that long. go-mail's own
// deadlines, one per stage of several commands, are ignored: they would
// make INTAKE_SMTP_TIMEOUT mean a different thing at each stage.
type contextConn struct {
	net.Conn
	stop     func() bool
	timeout  time.Duration
	deadline time.Time // the send's; zero when it has none

	long atomic.Bool // waiting for the final dot's reply
}

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
	Code  int
	cause string
}

func (f *Failure) Error() string {
	class := "temporary"
	if f.Permanent {
		class = "permanent"
	}
	if f.Code != 0 {
		return fmt.Sprintf("smtp %s failure: %s: reply code %d", class, f.cause, f.Code)
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

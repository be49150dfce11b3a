package mail

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"
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
	// Timeout bounds the dial and each SMTP command.
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

// Send delivers m. The error, when there is one, is a *Failure: it says
// whether to retry and carries the SMTP code, never the server's text.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.FromFormat(s.cfg.From.Name, s.cfg.From.Address); err != nil {
		return &Failure{Permanent: true, cause: "invalid sender"}
	}
	if err := msg.AddToFormat(m.ToName, m.ToAddress); err != nil {
		return &Failure{Permanent: true, cause: "invalid recipient"}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)

	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithHELO(s.domain),
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
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return &Failure{cause: "client setup"}
	}

	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return classify(err, "connect")
	}
	err = client.SendWithSMTPClient(conn, msg)
	// Once the server has accepted the message, a failing RSET, NOOP or
	// QUIT after it must not turn into a retry (and a second copy), nor
	// into "failed": the message is delivered.
	_ = client.CloseWithSMTPClient(conn)
	if err != nil && !msg.IsDelivered() {
		return classify(err, "send")
	}
	return nil
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
// MAIL, RCPT or DATA is permanent; 4xx replies, refused connections,
// timeouts and TLS errors are temporary. The server's text is dropped.
func classify(err error, stage string) *Failure {
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) {
		code := sendErr.ErrorCode()
		if code >= 500 && code < 600 {
			return &Failure{Permanent: true, Code: code, cause: stage}
		}
		if code >= 400 && code < 500 {
			return &Failure{Code: code, cause: stage}
		}
	}
	// A dial timeout matches context.DeadlineExceeded; a server that stops
	// answering trips the connection deadline go-mail sets, which only
	// matches os.ErrDeadlineExceeded.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return &Failure{cause: stage + ": timeout"}
	}
	return &Failure{cause: stage}
}

package devmail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Defaults for Opts.
const (
	DefaultSMTPAddr    = "127.0.0.1:1025"
	DefaultMailboxAddr = "127.0.0.1:8025"
	DefaultCapacity    = 500
	// MaxMessageBytes is the largest message accepted (Intake's are a few KB).
	MaxMessageBytes = 4 << 20
)

// Opts configures Start. The zero value listens on the default addresses.
type Opts struct {
	SMTPAddr    string    // where the SMTP server listens; DefaultSMTPAddr when empty
	MailboxAddr string    // where the mailbox page is served; DefaultMailboxAddr when empty
	Capacity    int       // messages kept, the oldest dropped first; DefaultCapacity when 0
	Log         io.Writer // one summary line per caught message (and SMTP errors); nil discards
	Now         func() time.Time
}

// Catcher is a running SMTP server and mailbox page.
type Catcher struct {
	smtpAddr   *net.TCPAddr
	mailboxURL string
	box        *mailbox
	smtp       *smtp.Server
	smtpLn     net.Listener
	web        *http.Server
	served     sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	logMu sync.Mutex
	log   io.Writer
}

// Start listens on both addresses and serves until Close.
func Start(opts *Opts) (*Catcher, error) {
	if opts == nil {
		opts = &Opts{}
	}
	o := *opts
	if o.SMTPAddr == "" {
		o.SMTPAddr = DefaultSMTPAddr
	}
	if o.MailboxAddr == "" {
		o.MailboxAddr = DefaultMailboxAddr
	}
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}

	smtpLn, err := net.Listen("tcp", o.SMTPAddr)
	if err != nil {
		return nil, fmt.Errorf("mail catcher: listen for SMTP: %w", err)
	}
	webLn, err := net.Listen("tcp", o.MailboxAddr)
	if err != nil {
		_ = smtpLn.Close()
		return nil, fmt.Errorf("mail catcher: listen for the mailbox page: %w", err)
	}

	c := &Catcher{
		smtpAddr:   smtpLn.Addr().(*net.TCPAddr),
		mailboxURL: "http://" + browsable(webLn.Addr().(*net.TCPAddr)),
		box:        newMailbox(o.Capacity, o.Now),
		smtpLn:     smtpLn,
		log:        o.Log,
	}
	c.smtp = smtp.NewServer(backend{c})
	c.smtp.Domain = "intake-dev-mail.localhost"
	c.smtp.MaxMessageBytes = MaxMessageBytes
	c.smtp.MaxRecipients = 100
	c.smtp.ReadTimeout = time.Minute
	c.smtp.WriteTimeout = time.Minute
	c.smtp.ErrorLog = log.New(lockedWriter{c}, "smtp: ", 0)
	c.web = &http.Server{
		Handler:           c.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(lockedWriter{c}, "mailbox: ", 0),
	}

	c.served.Go(func() { _ = c.smtp.Serve(smtpLn) })
	c.served.Go(func() {
		if err := c.web.Serve(webLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.printf("mailbox: %v\n", err)
		}
	})
	return c, nil
}

// SMTPAddr is the address the SMTP server listens on.
func (c *Catcher) SMTPAddr() *net.TCPAddr { return c.smtpAddr }

// MailboxURL is the mailbox page's address, like http://127.0.0.1:8025.
func (c *Catcher) MailboxURL() string { return c.mailboxURL }

// Messages returns the kept messages, newest first.
func (c *Catcher) Messages() []Message { return c.box.list() }

// Close stops both servers at once, dropping open SMTP sessions (a message
// not yet accepted was never caught), and waits for them to stop. Calling
// it again does nothing.
func (c *Catcher) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.smtp.Close()
		// go-smtp closes only the listeners its Serve has registered, which
		// it may not have done yet right after Start.
		_ = c.smtpLn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.web.Shutdown(ctx); err != nil {
			_ = c.web.Close()
		}
		c.served.Wait()
	})
	return c.closeErr
}

// caught stores a message and prints its summary line. The line names the
// recipients: this is the developer's own local mail on their own terminal,
// not a server log, so showing To is the point (Intake's servers never log
// addresses).
func (c *Catcher) caught(from string, to []string, raw []byte) {
	m := c.box.add(from, to, raw)
	id := m.MessageID
	if id == "" {
		id = "(no Message-ID)"
	}
	c.printf("%s %s to %s %q %s/messages/%d\n",
		m.At.Format("15:04:05"), id, strings.Join(m.To, ", "), m.Subject, c.mailboxURL, m.N)
}

func (c *Catcher) printf(format string, args ...any) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	fmt.Fprintf(c.log, format, args...)
}

// lockedWriter lets the servers' error logs share the catcher's output.
type lockedWriter struct{ c *Catcher }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.logMu.Lock()
	defer w.c.logMu.Unlock()
	return w.c.log.Write(p)
}

// browsable is addr as a browser should be pointed at it: an unspecified
// host (listening on every interface) is reached on loopback.
func browsable(addr *net.TCPAddr) string {
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// backend accepts every message from anyone: the catcher listens on
// loopback for the developer's own processes.
type backend struct{ c *Catcher }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{c: b.c}, nil }

type session struct {
	c    *Catcher
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.c.caught(s.from, s.to, raw)
	return nil
}

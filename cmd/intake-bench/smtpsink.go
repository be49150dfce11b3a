package main

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is an SMTP server (go-smtp) on a loopback port that accepts
// everything and records, per application id, when its confirmation was
// accepted. It keeps no message bodies, so a backlog of any size fits.
type smtpSink struct {
	host   string
	port   int
	server *smtp.Server

	mu         sync.Mutex
	accepted   map[string]time.Time // application id → first acceptance
	duplicates int
	last       time.Time
}

func startSMTPSink() (*smtpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &smtpSink{host: "127.0.0.1", port: addr.Port, accepted: map[string]time.Time{}}
	s.server = smtp.NewServer(sinkBackend{s})
	s.server.Domain = "bench.localhost"
	s.server.ReadTimeout = 30 * time.Second
	s.server.WriteTimeout = 30 * time.Second
	s.server.MaxMessageBytes = 1 << 20
	s.server.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.server.Serve(ln) }()
	return s, nil
}

func (s *smtpSink) close() { _ = s.server.Close() }

// env points a worker at the sink.
func (s *smtpSink) env() []string {
	return []string{
		"INTAKE_SMTP_HOST=" + s.host,
		"INTAKE_SMTP_PORT=" + strconv.Itoa(s.port),
		"INTAKE_SMTP_TLS=none",
	}
}

// reset forgets what was accepted.
func (s *smtpSink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted = map[string]time.Time{}
	s.duplicates = 0
	s.last = time.Time{}
}

// count is how many applications had their confirmation accepted.
func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// at is when the confirmation for application id was first accepted.
func (s *smtpSink) at(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.accepted[id]
	return t, ok
}

// stats returns the first and last acceptance times and the number of
// second copies.
func (s *smtpSink) stats() (first, last time.Time, duplicates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.accepted {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first, s.last, s.duplicates
}

func (s *smtpSink) record(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accepted[id]; ok {
		s.duplicates++
		return
	}
	s.accepted[id] = at
	if at.After(s.last) {
		s.last = at
	}
}

// applicationID takes the id out of a Message-ID
// <confirmation.<id>@<domain>>.
func applicationID(messageID string) (string, bool) {
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(messageID), "<"), ">")
	id, ok := strings.CutPrefix(id, "confirmation.")
	if !ok {
		return "", false
	}
	id, _, ok = strings.Cut(id, "@")
	return id, ok
}

type sinkBackend struct{ s *smtpSink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{b.s}, nil }

type sinkSession struct{ s *smtpSink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (x sinkSession) Data(r io.Reader) error {
	br := bufio.NewReader(r)
	header, _ := textproto.NewReader(br).ReadMIMEHeader()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	// The message is accepted once Data returns nil (the 250 reply).
	if id, ok := applicationID(header.Get("Message-Id")); ok {
		x.s.record(id, time.Now())
	}
	return nil
}

package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
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
	// caDir holds the STARTTLS certificate the binaries trust (empty
	// without STARTTLS).
	caDir string

	mu         sync.Mutex
	accepted   map[string]time.Time // application id → first acceptance
	duplicates int
	last       time.Time
}

// startSMTPSink starts the sink; with starttls it offers STARTTLS with a
// certificate for 127.0.0.1 made for the run, which env tells the binaries
// to trust, so a TLS handshake per connection is part of the figures.
func startSMTPSink(starttls bool) (*smtpSink, error) {
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
	if starttls {
		if s.server.TLSConfig, s.caDir, err = sinkCertificate(); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	go func() { _ = s.server.Serve(ln) }()
	return s, nil
}

// sinkCertificate makes a self-signed certificate for 127.0.0.1 and writes
// it to cert.pem in a new directory.
func sinkCertificate() (*tls.Config, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "intake-bench SMTP sink"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "intake-bench-smtp-")
	if err != nil {
		return nil, "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, dir, nil
}

func (s *smtpSink) close() {
	_ = s.server.Close()
	if s.caDir != "" {
		_ = os.RemoveAll(s.caDir)
	}
}

// env points a worker at the sink.
func (s *smtpSink) env() []string {
	env := []string{"INTAKE_SMTP_HOST=" + s.host, "INTAKE_SMTP_PORT=" + strconv.Itoa(s.port)}
	if s.caDir == "" {
		return append(env, "INTAKE_SMTP_TLS=none")
	}
	return append(env, "INTAKE_SMTP_TLS=starttls", "SSL_CERT_FILE="+filepath.Join(s.caDir, "cert.pem"))
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

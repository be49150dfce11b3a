package mail_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/mail"
)

// afterDataServer is a minimal SMTP server that accepts one message and
// then answers every command after the DATA with reply (or drops the
// connection when reply is empty): a server that took the message and then
// misbehaved. It reports whether the message was accepted.
func afterDataServer(t *testing.T, reply string) (host string, port int, accepted <-chan bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	done := make(chan bool, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		write := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
		write("220 test ESMTP")
		delivered := false
		defer func() { done <- delivered }()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case delivered && reply == "":
				return
			case delivered:
				write(reply)
				if strings.HasPrefix(cmd, "QUIT") {
					return
				}
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				write("250 test")
			case strings.HasPrefix(cmd, "DATA"):
				write("354 go ahead")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
				}
				write("250 queued")
				delivered = true
			default:
				write("250 ok")
			}
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", addr.Port, done
}

// Once the server has accepted the message, whatever goes wrong after it
// (a failing RSET, NOOP or QUIT, a dropped connection) must not count as a
// failed send: that would retry and send a second copy, or mark a
// delivered email "failed".
func TestSendAfterAcceptanceIsSent(t *testing.T) {
	t.Parallel()
	for name, reply := range map[string]string{
		"5xx after DATA":     "554 transaction failed",
		"4xx after DATA":     "421 closing",
		"dropped after DATA": "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			host, port, accepted := afterDataServer(t, reply)
			sender := newSender(t, host, port, 2*time.Second)
			msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
			require.NoError(t, err)

			require.NoError(t, sender.Send(t.Context(), msg))
			sender.Close() // the pooled connection's QUIT (or its drop) ends the server's session
			require.True(t, <-accepted, "the server accepted the message")
		})
	}
}

package mail_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/testkit"
)

// slowServer is a minimal SMTP server that greets at once and then waits
// delay before each reply after EHLO, and, when stallInData is set, never answers the end of the message: a
// server that is slow, or that hangs mid-DATA. It counts accepted messages.
func slowServer(t *testing.T, delay time.Duration, stallInData bool) (host string, port int, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				go func() { <-stop; conn.Close() }()
				r := bufio.NewReader(conn)
				delayed := false
				reply := func(s string) bool {
					wait := time.Duration(0)
					if delayed {
						wait = delay
					}
					select {
					case <-stop:
						return false
					case <-time.After(wait):
					}
					_, err := conn.Write([]byte(s + "\r\n"))
					return err == nil
				}
				if !reply("220 slow ESMTP") {
					return
				}
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						reply("250 slow")
						delayed = true
					case strings.HasPrefix(cmd, "DATA"):
						reply("354 go ahead")
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						if stallInData {
							<-stop
							return
						}
						// Counted when taken, before the reply: a pooled
						// send returns on the reply, with no QUIT after it.
						accepted.Add(1)
						reply("250 queued")
					case strings.HasPrefix(cmd, "QUIT"):
						reply("221 bye")
						return
					default:
						reply("250 ok")
					}
				}
			}()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", addr.Port, accepted
}

// A server that answers every command within INTAKE_SMTP_TIMEOUT can still
// stretch one send to several timeouts. The whole exchange must end with
// the caller's context, or a send could outlive the delivery's lease.
// (150 ms a reply keeps each of go-mail's own stages under its 1 s, so only
// the context can end this send early.)
func TestSendEndsWithItsContext(t *testing.T) {
	t.Parallel()
	host, port, accepted := slowServer(t, 150*time.Millisecond, false)
	sender := newSender(t, host, port, time.Second)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = sender.Send(ctx, msg)
	elapsed := time.Since(start)

	requireFailure(t, err, false, 0)
	require.Less(t, elapsed, 600*time.Millisecond, "the send outlived its context by %s", elapsed-400*time.Millisecond)
	require.Zero(t, accepted.Load(), "the server accepted a message after the context ended")
}

// A server that hangs after the message's data: cancelling the context
// (a shutdown, a lease running out) ends the send at once, not after the
// command timeout.
func TestSendCancelledMidData(t *testing.T) {
	t.Parallel()
	host, port, _ := slowServer(t, 0, true)
	sender := newSender(t, host, port, 5*time.Second)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	err = sender.Send(ctx, msg)
	elapsed := time.Since(start)

	requireFailure(t, err, false, 0)
	require.Less(t, elapsed, time.Second, "a cancelled send waited %s for a hung server", elapsed)
}

// INTAKE_SMTP_TIMEOUT is the wait for each reply: a server that answers
// every command just under it, within the context, gets the message.
// (go-mail alone gives a timeout to each stage of several commands, which
// would fail this send at its third slow reply.)
func TestSlowSendWithinItsContextDelivers(t *testing.T) {
	t.Parallel()
	host, port, accepted := slowServer(t, 250*time.Millisecond, false)
	sender := newSender(t, host, port, 300*time.Millisecond)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, sender.Send(ctx, msg))
	require.EqualValues(t, 1, accepted.Load())
}

// The reply to the final dot is the one wait where giving up is ambiguous:
// the server may have taken the message, and the retry would send a second
// copy. It is waited for until the send's deadline, however short
// INTAKE_SMTP_TIMEOUT is (RFC 5321 gives it ten minutes).
func TestSlowReplyToTheFinalDotIsWaitedFor(t *testing.T) {
	t.Parallel()
	srv := testkit.StartSMTP(t)
	srv.SetDelay(700 * time.Millisecond) // the server takes its time to queue the message
	sender := newSender(t, srv.Host, srv.Port, 200*time.Millisecond)
	msg, err := mail.Confirmation(fixedConfirmation(), sender.Domain())
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, sender.Send(ctx, msg), "a slow final reply within the send's deadline is a delivery")
	require.Len(t, srv.Messages(), 1)
}

package testkit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// The proxy is a test tool: checked before it is trusted.

func TestProxyCutAndRestore(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p := StartProxy(t, echo.Addr().String())

	roundTrip := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && line != "ping\n" {
			t.Fatalf("echo said %q", line)
		}
		return err
	}
	before, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(before); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	// Hold: open connections die, new ones get nothing until Restore.
	if n := p.Cut(Hold); n != 1 {
		t.Fatalf("cut closed %d connections, want 1", n)
	}
	if err := roundTrip(before); err == nil {
		t.Fatal("a connection survived the cut")
	}
	held, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = held.SetDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = held.Write([]byte("ping\n"))
	if _, err := held.Read(make([]byte, 8)); err == nil || !isTimeout(err) {
		t.Fatalf("a held connection answered during the cut: %v", err)
	}
	p.Restore()
	_ = held.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(held).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("held connection after restore: %q, %v", line, err)
	}
	held.Close()

	// Refuse: new connections are closed at once.
	p.Cut(Refuse)
	refused, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(refused); err == nil {
		t.Fatal("a connection went through a refusing cut")
	}
	p.Restore()
	after, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if err := roundTrip(after); err != nil {
		t.Fatalf("after restore: %v", err)
	}
	st := p.Stats()
	// The second cut may still find the held connection, closed on our
	// side a moment before.
	if st.ClosedAtCut < 1 || st.HeldDuringCut != 1 || st.RefusedAtCut != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

package outbox_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// gate is a TCP proxy in front of Postgres that can hold new connections at
// the door: a connection accepted while the gate is shut waits, unconnected
// to the server, until the gate opens. It lets a test act while a client is
// reconnecting, in the window between losing its connection and having a
// new one.
type gate struct {
	addr string
	// accepted receives one value per connection the gate accepts.
	accepted chan struct{}

	mu     sync.Mutex
	opened chan struct{} // closed while the gate is open
	conns  map[net.Conn]struct{}
	closed chan struct{}
	wg     sync.WaitGroup
}

// startGate starts an open gate in front of the server dbURL names and
// closes it, with every connection through it, when the test ends.
func startGate(t *testing.T, server string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &gate{
		addr:     ln.Addr().String(),
		accepted: make(chan struct{}, 16),
		opened:   make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
		closed:   make(chan struct{}),
	}
	close(g.opened)
	g.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.track(c) {
				return
			}
			select {
			case g.accepted <- struct{}{}:
			default:
			}
			g.wg.Go(func() { g.serve(c, server) })
		}
	})
	t.Cleanup(func() {
		close(g.closed)
		_ = ln.Close()
		g.mu.Lock()
		for c := range g.conns {
			_ = c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// url returns dbURL with its host replaced by the gate's address.
func (g *gate) url(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.Host = g.addr
	return u.String()
}

// shut makes connections accepted from now on wait for open.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opened = make(chan struct{})
}

// open lets waiting and later connections through.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.opened:
	default:
		close(g.opened)
	}
}

// track remembers c so that closing the gate closes it; it reports false
// (and closes c) when the gate is already closed.
func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closed:
		_ = c.Close()
		return false
	default:
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *gate) forget(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c)
	_ = c.Close()
}

func (g *gate) serve(client net.Conn, server string) {
	defer g.forget(client)
	g.mu.Lock()
	opened := g.opened
	g.mu.Unlock()
	select {
	case <-opened:
	case <-g.closed:
		return
	}

	upstream, err := net.Dial("tcp", server)
	if err != nil {
		return
	}
	if !g.track(upstream) {
		return
	}
	defer g.forget(upstream)

	// When either side ends, close both, so the other copy ends too: a
	// backend killed by pg_terminate_backend drops its client.
	var once sync.Once
	done := func() {
		once.Do(func() {
			_ = client.Close()
			_ = upstream.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer done()
		_, _ = io.Copy(upstream, client)
	})
	wg.Go(func() {
		defer done()
		_, _ = io.Copy(client, upstream)
	})
	wg.Wait()
}

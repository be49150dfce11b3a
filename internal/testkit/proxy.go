package testkit

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CutMode says what a cut proxy does with connections opened during the
// cut. Connections open when the cut starts are always closed.
type CutMode int

const (
	// Hold accepts new connections but lets no byte through until Restore,
	// then connects them upstream: a network partition, where a client's
	// packets are retransmitted until the path heals, so a client that
	// does not time out its connection attempt waits the whole cut.
	Hold CutMode = iota
	// Refuse closes new connections at once, as a host that answers with
	// a reset.
	Refuse
	// Drop leaves the open connections open but dead: every byte either
	// way is silently dropped, for good, and neither side is ever told,
	// not even when the other side closes (a load balancer, pooler or NAT
	// that lost its state, a server that vanished without a reset). New
	// connections are held as with Hold and go through after Restore.
	Drop
)

func (m CutMode) String() string {
	switch m {
	case Refuse:
		return "refuse"
	case Drop:
		return "drop"
	default:
		return "hold"
	}
}

// ProxyStats counts what the proxy did.
type ProxyStats struct {
	Accepted       int // connections accepted from clients
	ClosedAtCut    int // client connections closed when a cut started
	DroppedAtCut   int // connections left open but dead when a cut started (Drop)
	HeldDuringCut  int // connections opened during a cut and held (Hold)
	RefusedAtCut   int // connections opened during a cut and closed (Refuse)
	UpstreamFailed int // connections whose upstream dial failed
}

// Proxy is an in-process TCP proxy to one upstream address that can cut
// every connection through it for a while and restore them.
type Proxy struct {
	target string
	ln     net.Listener

	mu       sync.Mutex
	cut      bool
	mode     CutMode
	restored chan struct{} // closed by Restore; replaced by each Cut
	closed   bool
	done     chan struct{}
	pairs    map[*pair]struct{}
	stats    ProxyStats
	wg       sync.WaitGroup
}

// pair is one proxied connection: the client's side and the upstream side.
type pair struct {
	client, upstream net.Conn
	once             sync.Once
	dead             atomic.Bool // Drop: forward nothing, close nothing
}

func (p *pair) close() {
	p.once.Do(func() {
		_ = p.client.Close()
		if p.upstream != nil {
			_ = p.upstream.Close()
		}
	})
}

// StartProxy listens on a loopback port and forwards to target until the
// test ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{
		target:   target,
		ln:       ln,
		restored: make(chan struct{}),
		done:     make(chan struct{}),
		pairs:    map[*pair]struct{}{},
	}
	close(p.restored)
	p.wg.Go(p.acceptLoop)
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's listening port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Cut closes every open connection (Drop: makes it dead instead) and, until
// Restore, treats new ones as mode says. It returns how many connections
// it closed or made dead.
func (p *Proxy) Cut(mode CutMode) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		p.cut = true
		p.restored = make(chan struct{})
	}
	p.mode = mode
	n := 0
	for pr := range p.pairs {
		if mode == Drop {
			// Kept in pairs, so that Close still closes it at the end.
			if !pr.dead.Swap(true) {
				p.stats.DroppedAtCut++
				n++
			}
			continue
		}
		pr.close()
		delete(p.pairs, pr)
		n++
	}
	if mode != Drop {
		p.stats.ClosedAtCut += n
	}
	return n
}

// Restore ends a cut: held connections are connected upstream and new ones
// go through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		p.cut = false
		close(p.restored)
	}
}

// Stats returns what the proxy did so far.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
		_ = p.ln.Close()
		for pr := range p.pairs {
			pr.close()
			delete(p.pairs, pr)
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		p.stats.Accepted++
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve waits out a cut (or refuses the connection), connects upstream and
// copies both ways until either side closes or a cut closes both.
func (p *Proxy) serve(client net.Conn) {
	held := false
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			return
		}
		if !p.cut {
			p.mu.Unlock()
			break
		}
		if p.mode == Refuse {
			p.stats.RefusedAtCut++
			p.mu.Unlock()
			_ = client.Close()
			return
		}
		if !held {
			held = true
			p.stats.HeldDuringCut++
		}
		restored := p.restored
		p.mu.Unlock()
		select {
		case <-restored:
		case <-p.done:
		}
	}

	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.mu.Lock()
		p.stats.UpstreamFailed++
		p.mu.Unlock()
		_ = client.Close()
		return
	}
	pr := &pair{client: client, upstream: upstream}
	p.mu.Lock()
	if p.closed || p.cut {
		// A cut began while we dialled: this connection is cut too.
		p.mu.Unlock()
		pr.close()
		return
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()

	var copies sync.WaitGroup
	copies.Go(func() { pump(pr, upstream, client) })
	copies.Go(func() { pump(pr, client, upstream) })
	copies.Wait()
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
}

// pump copies src to dst until either side closes; then it closes both,
// unless the pair is dead: a dead connection's other side never learns
// anything (Close closes it at the end).
func pump(pr *pair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if !pr.dead.Load() {
		pr.close()
	}
}

package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// group commits together the requests of one kind that arrive together:
// the first goes at once, in a statement of its own, and those that
// arrive while a statement is in flight go together in the next one
// ("flush while busy"). No timer, so an idle process adds no latency, and a
// busy one pays one commit for many requests. Requests for the same
// application never share a statement: the later one waits for the next.
type group[Req, Res any] struct {
	// app is the application a request is for.
	app func(Req) uuid.UUID
	// run is the statement for reqs: the result of each by its index, or
	// one error for all.
	run func(ctx context.Context, reqs []Req) ([]Res, error)

	mu    sync.Mutex
	busy  bool // a flush is running
	queue []*groupCall[Req, Res]
}

type groupCall[Req, Res any] struct {
	ctx  context.Context
	req  Req
	res  Res
	err  error
	done chan struct{}
}

// do queues req and returns its result once a statement has run it; an
// error when ctx ended before, or when its group's statement failed (the
// caller then does it alone).
func (g *group[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := &groupCall[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if !g.busy {
		g.busy = true
		go g.flush()
	}
	g.mu.Unlock()
	<-c.done
	return c.res, c.err
}

// flush runs statements until the queue is empty. It is detached from its
// callers' cancellation (each statement ends by its callers' earliest
// deadline), so a worker that shuts down still writes what it queued: the
// records of sends that happened.
func (g *group[Req, Res]) flush() {
	for {
		g.mu.Lock()
		calls := g.next()
		if len(calls) == 0 {
			g.busy = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.runCalls(calls)
	}
}

// next takes from the queue, in order of arrival, the calls for the next
// statement: the first for each application; the later ones for an
// application already taken stay queued. The caller holds mu.
func (g *group[Req, Res]) next() []*groupCall[Req, Res] {
	var calls, rest []*groupCall[Req, Res]
	taken := make(map[uuid.UUID]bool, len(g.queue))
	for _, c := range g.queue {
		if id := g.app(c.req); !taken[id] {
			taken[id] = true
			calls = append(calls, c)
			continue
		}
		rest = append(rest, c)
	}
	g.queue = rest
	return calls
}

// runCalls runs one statement for calls and answers each; a call whose
// context already ended is answered with its error and left out.
func (g *group[Req, Res]) runCalls(calls []*groupCall[Req, Res]) {
	live := calls[:0]
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := groupContext(live)
	defer cancel()
	reqs := make([]Req, len(live))
	for i, c := range live {
		reqs[i] = c.req
	}
	res, err := g.run(ctx, reqs)
	for i, c := range live {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}

// groupContext is the context of a statement for calls: the first one's
// values, never cancelled by any of them, and ended by the earliest of
// their deadlines, so no caller waits on it past its own.
func groupContext[Req, Res any](calls []*groupCall[Req, Res]) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(calls[0].ctx)
	var end time.Time
	for _, c := range calls {
		if d, ok := c.ctx.Deadline(); ok && (end.IsZero() || d.Before(end)) {
			end = d
		}
	}
	if end.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, end)
}

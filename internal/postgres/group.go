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
//
// No goroutine of its own: a caller that finds no statement running runs
// the next one itself, and once it has its answer hands the turn to the
// first caller still waiting, so nobody waits for a hand-off when idle.
type group[Req, Res any] struct {
	// app is the application a request is for.
	app func(Req) uuid.UUID
	// run is the statement for reqs: the result of each by its index, or
	// one error for all.
	run func(ctx context.Context, reqs []Req) ([]Res, error)

	mu    sync.Mutex
	busy  bool // a caller is running statements
	queue []*groupCall[Req, Res]
}

// groupCall is one caller's request, waiting in the queue or in a
// statement, and its answer.
type groupCall[Req, Res any] struct {
	ctx context.Context
	req Req
	res Res
	err error
	// wake is signalled once: when the call is answered, or when it is
	// the call's turn to run statements (lead, set under mu).
	wake     chan struct{}
	lead     bool
	answered bool
}

// do queues req and returns its result once a statement has run it; an
// error when ctx ended before, or when its group's statement failed (the
// caller then does it alone).
func (g *group[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := &groupCall[Req, Res]{ctx: ctx, req: req, wake: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	c.lead, g.busy = lead, true
	g.mu.Unlock()
	if !lead {
		<-c.wake
		g.mu.Lock()
		lead = c.lead && !c.answered
		g.mu.Unlock()
		if !lead {
			return c.res, c.err
		}
	}
	g.flush(c)
	return c.res, c.err
}

// flush runs statements until c is answered, then hands the turn to the
// first call still queued (or ends it, when none is). Each statement is
// detached from its callers' cancellation (and ends by their earliest
// deadline), so a worker that shuts down still writes what it queued: the
// records of sends that happened.
func (g *group[Req, Res]) flush(c *groupCall[Req, Res]) {
	for {
		g.mu.Lock()
		if c.answered {
			if len(g.queue) == 0 {
				g.busy = false
			} else {
				g.queue[0].lead = true
				g.queue[0].wake <- struct{}{}
			}
			g.mu.Unlock()
			return
		}
		calls := g.next()
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
	var live []*groupCall[Req, Res]
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			g.answer(c)
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
		g.answer(c)
	}
}

// answer marks c answered and wakes its caller, unless that caller is the
// one running the statements (it is not waiting).
func (g *group[Req, Res]) answer(c *groupCall[Req, Res]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.answered = true
	if !c.lead {
		c.wake <- struct{}{}
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

package devmail

import (
	"slices"
	"sync"
	"time"
)

// mailbox keeps the most recent messages in memory.
type mailbox struct {
	capacity int
	now      func() time.Time

	mu   sync.Mutex
	msgs []Message // oldest first; numbers are consecutive
	next int
}

func newMailbox(capacity int, now func() time.Time) *mailbox {
	return &mailbox{capacity: capacity, now: now, next: 1}
}

// add parses raw, numbers it and keeps it, dropping the oldest message when
// the mailbox is full.
func (b *mailbox) add(from string, to []string, raw []byte) Message {
	m := parseMessage(raw)
	m.From = from
	m.To = slices.Clone(to)
	b.mu.Lock()
	defer b.mu.Unlock()
	m.N = b.next
	m.At = b.now()
	b.next++
	b.msgs = append(b.msgs, m)
	if over := len(b.msgs) - b.capacity; over > 0 {
		b.msgs = slices.Delete(b.msgs, 0, over)
	}
	return m
}

// list returns the kept messages, newest first.
func (b *mailbox) list() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.msgs)
	slices.Reverse(out)
	return out
}

// get returns message n if it is still kept.
func (b *mailbox) get(n int) (Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) == 0 {
		return Message{}, false
	}
	i := n - b.msgs[0].N
	if i < 0 || i >= len(b.msgs) {
		return Message{}, false
	}
	return b.msgs[i], true
}

package postgres

// StartsWaiting is how many attempt starts wait for the next group
// statement, and whether a statement of the group is running.
func (s *Store) StartsWaiting() (queued int, busy bool) { return s.starts.waiting() }

// SentsWaiting is StartsWaiting for the "sent" records.
func (s *Store) SentsWaiting() (queued int, busy bool) { return s.sents.waiting() }

func (g *group[Req, Res]) waiting() (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue), g.busy
}

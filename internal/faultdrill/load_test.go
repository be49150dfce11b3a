//go:build drills

package faultdrill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// load is a set of clients submitting applications continuously, each
// behaving like a real client: one Idempotency-Key per application,
// retried with the same key and body on a connection error, a 503, a 429
// or a 409 idempotency-key-in-flight, honouring Retry-After, until it gets
// its 201.
type load struct {
	url      string
	prefix   string
	clients  int
	interval time.Duration // pause between one client's applications
	http     *http.Client

	stopping chan struct{}
	hardStop context.CancelFunc
	hardCtx  context.Context
	wg       sync.WaitGroup
	started  time.Time
	stopped  time.Time

	mu       sync.Mutex
	attempts []attempt
	created  map[string]string // key → application id, for keys that got a 201
	bodies   map[string]string // key → the body sent with it
	errored  map[string]bool   // keys that saw an error before their 201
	replays  int               // 201s that were replays (Idempotent-Replayed: true)
	given    []string          // keys given up at the hard stop, still without a 201
	odd      []attempt         // answers a real client could not retry
}

// attempt is one HTTP request.
type attempt struct {
	key        string
	sent       time.Time
	latency    time.Duration
	status     int    // 0: no HTTP answer
	problem    string // the problem type of an error answer
	retryAfter string
	err        string
}

func (a attempt) done() time.Time { return a.sent.Add(a.latency) }

func startLoad(url, prefix string, clients int, interval time.Duration) *load {
	l := &load{
		url: url, prefix: prefix, clients: clients, interval: interval,
		http: &http.Client{
			// Far above the API's own deadline: a request that reaches this
			// is a hang, and is reported as one.
			Timeout:   15 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients},
		},
		stopping: make(chan struct{}),
		created:  map[string]string{},
		bodies:   map[string]string{},
		errored:  map[string]bool{},
		started:  time.Now(),
	}
	l.hardCtx, l.hardStop = context.WithCancel(context.Background())
	for c := range clients {
		l.wg.Go(func() { l.client(c) })
	}
	return l
}

// stop asks the clients to stop after their current application, which
// each keeps retrying until it gets its 201 or grace passes.
func (l *load) stop(grace time.Duration) {
	close(l.stopping)
	t := time.AfterFunc(grace, l.hardStop)
	l.wg.Wait()
	t.Stop()
	l.hardStop()
	l.stopped = time.Now()
	l.http.CloseIdleConnections()
}

func (l *load) client(c int) {
	for i := 0; ; i++ {
		key := fmt.Sprintf("%s-c%d-n%d", l.prefix, c, i)
		body := fmt.Sprintf(`{"full_name":"Drill Applicant","email":"%s.c%d.n%d@drill.example"}`, l.prefix, c, i)
		l.mu.Lock()
		l.bodies[key] = body
		l.mu.Unlock()
		l.submit(key, body)
		select {
		case <-l.stopping:
			return
		case <-time.After(l.interval):
		}
	}
}

// submit retries one application until it is created, refused for good,
// or the hard stop comes.
func (l *load) submit(key, body string) {
	for {
		a, id, replayed := l.do(key, body)
		l.mu.Lock()
		l.attempts = append(l.attempts, a)
		retry := false
		switch {
		case a.status == http.StatusCreated:
			l.created[key] = id
			if replayed {
				l.replays++
			}
		case a.status == 0, a.status == http.StatusServiceUnavailable, a.status == http.StatusTooManyRequests,
			a.status == http.StatusConflict && a.problem == "idempotency-key-in-flight":
			l.errored[key] = true
			retry = true
		default:
			l.odd = append(l.odd, a)
		}
		l.mu.Unlock()
		if !retry {
			return
		}
		wait := 250 * time.Millisecond
		if s, err := strconv.Atoi(a.retryAfter); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 5*time.Second)
		}
		select {
		case <-l.hardCtx.Done():
			l.mu.Lock()
			l.given = append(l.given, key)
			l.mu.Unlock()
			return
		case <-time.After(wait):
		}
	}
}

func (l *load) do(key, body string) (attempt, string, bool) {
	a := attempt{key: key, sent: time.Now()}
	req, err := http.NewRequest(http.MethodPost, l.url+"/api/v1/jobs/"+postingSlug+"/applications", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := l.http.Do(req)
	if err != nil {
		a.latency = time.Since(a.sent)
		a.err = err.Error()
		return a, "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a.latency = time.Since(a.sent)
	a.status = resp.StatusCode
	a.retryAfter = resp.Header.Get("Retry-After")
	if err != nil {
		a.status, a.err = 0, err.Error()
		return a, "", false
	}
	var parsed struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &parsed)
	a.problem = parsed.Type
	if a.status == http.StatusCreated && parsed.ID == "" {
		a.status, a.err = 0, "201 without an id"
	}
	return a, parsed.ID, resp.Header.Get("Idempotent-Replayed") == "true"
}

// snapshot copies what the clients did so far.
func (l *load) snapshot() (attempts []attempt, created map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	created = make(map[string]string, len(l.created))
	for k, v := range l.created {
		created[k] = v
	}
	return append([]attempt(nil), l.attempts...), created
}

// firstCreatedAfter is how long after t0 the first 201 arrived for a
// request sent at or after t0, or -1.
func (l *load) firstCreatedAfter(t0 time.Time) time.Duration {
	attempts, _ := l.snapshot()
	best := time.Duration(-1)
	for _, a := range attempts {
		if a.status == http.StatusCreated && !a.sent.Before(t0) {
			if d := a.done().Sub(t0); best < 0 || d < best {
				best = d
			}
		}
	}
	return best
}

// lastFailureAfter is how long after t0 the last answer other than 201
// came, for requests sent at or after t0, or -1 when there was none.
func (l *load) lastFailureAfter(t0 time.Time) time.Duration {
	attempts, _ := l.snapshot()
	last := time.Duration(-1)
	for _, a := range attempts {
		if a.status != http.StatusCreated && !a.sent.Before(t0) {
			last = max(last, a.done().Sub(t0))
		}
	}
	return last
}

// window summarises the answers to requests sent between from and to.
type window struct {
	requests      int
	byStatus      map[int]int
	maxLatency    time.Duration
	max503Latency time.Duration
	n503          int
	no503Retry    int // 503s without Retry-After
	hangs         int // no answer within the client's timeout
	noAnswer      int // connection errors
}

func (l *load) window(from, to time.Time) window {
	attempts, _ := l.snapshot()
	w := window{byStatus: map[int]int{}}
	for _, a := range attempts {
		if a.sent.Before(from) || !a.sent.Before(to) {
			continue
		}
		w.requests++
		w.byStatus[a.status]++
		w.maxLatency = max(w.maxLatency, a.latency)
		if a.status == http.StatusServiceUnavailable {
			w.n503++
			w.max503Latency = max(w.max503Latency, a.latency)
			if a.retryAfter == "" {
				w.no503Retry++
			}
		}
		if a.status == 0 {
			w.noAnswer++
			if strings.Contains(a.err, "Client.Timeout") || strings.Contains(a.err, "deadline exceeded") {
				w.hangs++
			}
		}
	}
	return w
}

func (w window) String() string {
	var parts []string
	for _, s := range []int{201, 503, 409, 429, 500, 0} {
		if n := w.byStatus[s]; n > 0 {
			name := strconv.Itoa(s)
			if s == 0 {
				name = "no-answer"
			}
			parts = append(parts, fmt.Sprintf("%s×%d", name, n))
		}
	}
	for s, n := range w.byStatus {
		switch s {
		case 201, 503, 409, 429, 500, 0:
		default:
			parts = append(parts, fmt.Sprintf("%d×%d", s, n))
		}
	}
	return fmt.Sprintf("%d requests [%s], max latency %s, max 503 latency %s",
		w.requests, strings.Join(parts, " "), w.maxLatency.Round(time.Millisecond), w.max503Latency.Round(time.Millisecond))
}

//go:build drills

package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load is a bounded, self-stopping set of clients. Each of Clients
// goroutines submits its share of Total applications, one at a time, each
// with its own Idempotency-Key and email, retrying with the SAME key the
// way a real client would.
type Load struct {
	Clients int
	Total   int
	// Prefix makes keys and emails unique to the drill and phase.
	Prefix string
	// Rate, when set, paces submissions to this many per second overall
	// (open loop: submission i starts at i/Rate); otherwise each client
	// submits as fast as it gets answers.
	Rate float64
	// Burst, with Rate, releases submissions in groups of Burst at once
	// (every Burst/Rate seconds), so that many requests are in flight
	// together.
	Burst int
	// Deadline bounds each submission's retries and the whole load.
	Deadline time.Duration
	// Email, when set, chooses submission i's address.
	Email func(i int) string
}

// Outcome is what happened to one submission (one key).
type Outcome struct {
	Index     int
	Key       string
	Email     string
	Status    int // the final answer's status; 0 when the client gave up
	Replayed  bool
	Body      []byte
	ID        string // the application id in the final 201
	StatusURL string
	Attempts  int
	// What made the client retry.
	ConnErrors  int
	Unavailable int            // 503
	InFlight    int            // 409 idempotency-key-in-flight
	RateLimited int            // 429
	ErrKinds    map[string]int // connection errors by kind
	GaveUp      string
	Start       time.Time // the first attempt
	Done        time.Time // the final answer
	FirstError  time.Time // the first retried failure, zero when none
}

// Retried reports whether the client saw anything it had to retry.
func (o *Outcome) Retried() bool { return !o.FirstError.IsZero() }

// LoadRun is a load in progress.
type LoadRun struct {
	load     Load
	cluster  *Cluster
	outcomes []Outcome
	done     chan struct{}
	finished atomic.Int64
	inFlight sync.Map // API base URL → *atomic.Int64
	began    time.Time
	took     time.Duration
}

// StartLoad starts the clients and returns at once.
func (c *Cluster) StartLoad(l Load) *LoadRun {
	if l.Deadline == 0 {
		l.Deadline = 2 * time.Minute
	}
	if l.Email == nil {
		l.Email = func(i int) string { return fmt.Sprintf("%s-%d@example.com", l.Prefix, i) }
	}
	r := &LoadRun{load: l, cluster: c, outcomes: make([]Outcome, l.Total), done: make(chan struct{}), began: time.Now()}
	transport := &http.Transport{
		MaxIdleConns:        2 * l.Clients,
		MaxIdleConnsPerHost: l.Clients,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: transport, Timeout: 15 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), l.Deadline)
	var wg sync.WaitGroup
	for w := range l.Clients {
		wg.Go(func() {
			for i := w; i < l.Total; i += l.Clients {
				if l.Rate > 0 {
					slot := i
					if l.Burst > 1 {
						slot = i / l.Burst * l.Burst
					}
					at := r.began.Add(time.Duration(float64(slot) / l.Rate * float64(time.Second)))
					if !sleepUntil(ctx, at) {
						r.outcomes[i] = Outcome{Index: i, GaveUp: "load deadline before start"}
						continue
					}
				}
				r.outcomes[i] = r.submit(ctx, client, w, i)
				r.finished.Add(1)
			}
		})
	}
	go func() {
		wg.Wait()
		r.took = time.Since(r.began)
		cancel()
		transport.CloseIdleConnections()
		close(r.done)
	}()
	return r
}

// Finished is how many submissions have their final answer.
func (r *LoadRun) Finished() int { return int(r.finished.Load()) }

// Running reports whether clients are still submitting.
func (r *LoadRun) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// InFlight is how many requests are waiting on the API at url right now.
func (r *LoadRun) InFlight(url string) int {
	v, ok := r.inFlight.Load(url)
	if !ok {
		return 0
	}
	return int(v.(*atomic.Int64).Load())
}

// Wait waits for every client to stop (they stop on their own: each
// submission ends with a final answer or at the deadline).
func (r *LoadRun) Wait() []Outcome {
	<-r.done
	return r.outcomes
}

// Took is how long the load ran.
func (r *LoadRun) Took() time.Duration {
	<-r.done
	return r.took
}

// submit runs one submission to its final answer.
func (r *LoadRun) submit(ctx context.Context, client *http.Client, w, i int) Outcome {
	l := r.load
	o := Outcome{
		Index: i,
		Key:   fmt.Sprintf("%s-%d-%08x", l.Prefix, i, rand.Uint32()),
		Email: l.Email(i),
		Start: time.Now(),
	}
	body, _ := json.Marshal(map[string]string{"full_name": fmt.Sprintf("Drill Applicant %d", i), "email": o.Email})
	for attempt := 0; ; attempt++ {
		o.Attempts++
		// Rotate over the replicas: each client moves on to the next one
		// with every submission and every retry.
		base := r.cluster.APIURL(w + i/l.Clients + attempt)
		status, header, respBody, err := r.post(ctx, client, base, o.Key, body)
		var wait time.Duration
		switch {
		case err != nil:
			o.ConnErrors++
			if o.ErrKinds == nil {
				o.ErrKinds = map[string]int{}
			}
			o.ErrKinds[errKind(err)]++
			wait = backoff(attempt)
		case status == http.StatusServiceUnavailable:
			o.Unavailable++
			wait = retryAfter(header, attempt)
		case status == http.StatusConflict && problemType(respBody) == "idempotency-key-in-flight":
			o.InFlight++
			wait = retryAfter(header, attempt)
		case status == http.StatusTooManyRequests:
			o.RateLimited++
			wait = retryAfter(header, attempt)
		default:
			o.Status, o.Body, o.Done = status, respBody, time.Now()
			o.Replayed = header.Get("Idempotent-Replayed") == "true"
			if status == http.StatusCreated {
				var res struct {
					ID        string `json:"id"`
					StatusURL string `json:"status_url"`
				}
				if json.Unmarshal(respBody, &res) == nil {
					o.ID, o.StatusURL = res.ID, res.StatusURL
				}
			}
			return o
		}
		if o.FirstError.IsZero() {
			o.FirstError = time.Now()
		}
		if time.Since(o.Start)+wait > l.Deadline || !sleepUntil(ctx, time.Now().Add(wait)) {
			o.GaveUp = fmt.Sprintf("deadline after %d attempts (last error: %v, status %d)", o.Attempts, err, status)
			o.Done = time.Now()
			return o
		}
	}
}

func (r *LoadRun) post(ctx context.Context, client *http.Client, base, key string, body []byte) (int, http.Header, []byte, error) {
	counter, _ := r.inFlight.LoadOrStore(base, new(atomic.Int64))
	counter.(*atomic.Int64).Add(1)
	defer counter.(*atomic.Int64).Add(-1)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/jobs/"+Slug+"/applications", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		// The status line arrived but the body did not: as good as a lost
		// response, so the client retries with the same key.
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// backoff is 50 ms doubling per attempt, capped at 1 s, with jitter.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	d = min(d, time.Second)
	return d/2 + rand.N(d/2+1)
}

// retryAfter honours the server's Retry-After (seconds), capped at 5 s,
// falling back to backoff.
func retryAfter(h http.Header, attempt int) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 5*time.Second)
	}
	return backoff(attempt)
}

// errKind names a connection error's kind for the report.
func errKind(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed (EOF)"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	default:
		return err.Error()
	}
}

func problemType(body []byte) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Type
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// LoadStats sums a load's outcomes.
type LoadStats struct {
	Total, Created, Replayed, GaveUp, Other int
	OtherStatuses                           map[int]int
	ConnErrors, Unavailable, InFlight       int
	RateLimited                             int
	ErrKinds                                map[string]int
	Retried                                 int           // submissions that retried at least once
	MaxRetryTime                            time.Duration // longest from first failure to final answer
}

// Stats sums the outcomes.
func Stats(outcomes []Outcome) LoadStats {
	s := LoadStats{Total: len(outcomes), OtherStatuses: map[int]int{}, ErrKinds: map[string]int{}}
	for _, o := range outcomes {
		for k, n := range o.ErrKinds {
			s.ErrKinds[k] += n
		}
		s.ConnErrors += o.ConnErrors
		s.Unavailable += o.Unavailable
		s.InFlight += o.InFlight
		s.RateLimited += o.RateLimited
		if o.Retried() {
			s.Retried++
			s.MaxRetryTime = max(s.MaxRetryTime, o.Done.Sub(o.FirstError))
		}
		switch {
		case o.GaveUp != "":
			s.GaveUp++
		case o.Status == http.StatusCreated && o.Replayed:
			s.Replayed++
		case o.Status == http.StatusCreated:
			s.Created++
		default:
			s.Other++
			s.OtherStatuses[o.Status]++
		}
	}
	return s
}

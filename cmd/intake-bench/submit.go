package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// The applicant every request sends (with a unique email): the fields a
// typical application has.
const (
	benchName  = "Ada Bench"
	benchPhone = "+44 20 7946 0000"
	benchLink  = "https://example.com/cv"
)

// submitPhase compares, for each concurrency, the submit transaction run
// straight over pgx, the same with pg_notify inside it, the best raw form
// of the same writes (the API's one statement, straight over pgx), and the
// real API over HTTP.
func (b *bench) submitPhase(ctx context.Context) error {
	phase := &SubmitPhase{}
	b.report.Submit = phase
	api, baseURL, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	defer func() { phase.Peak = stopAll(phaseSubmit, api) }()
	client := newHTTPClient(slices.Max(b.opts.Concurrency))
	defer client.CloseIdleConnections()

	for _, c := range b.opts.Concurrency {
		row := SubmitRow{Concurrency: c}
		runs := []struct {
			name string
			out  *Throughput
			run  func() (Throughput, error)
		}{
			{"baseline", &row.Baseline, func() (Throughput, error) { return b.baselineSubmit(ctx, c, false) }},
			{"baseline + pg_notify", &row.BaselineNotify, func() (Throughput, error) { return b.baselineSubmit(ctx, c, true) }},
			{"one statement", &row.OneStatement, func() (Throughput, error) { return b.oneStatementSubmit(ctx, c) }},
			{"system", &row.System, func() (Throughput, error) { return b.systemSubmit(ctx, client, baseURL, c), nil }},
		}
		for _, r := range runs {
			if err := resetTables(ctx, b.pool); err != nil {
				return err
			}
			t, err := r.run()
			if err != nil {
				return fmt.Errorf("C=%d %s: %w", c, r.name, err)
			}
			if t.Requests == 0 {
				return fmt.Errorf("C=%d %s: no request succeeded (%d errors, first: %s)", c, r.name, t.Errors, t.FirstError)
			}
			*r.out = t
			b.logf("submit C=%-3d %-21s %6.0f req/s  p50 %6.1f ms  p99 %6.1f ms  errors %d",
				c, r.name, t.PerSecond, t.Latency.P50, t.Latency.P99, t.Errors)
			if err := api.exited(); err != nil {
				return err
			}
		}
		row.Ratio = round(div(row.System.PerSecond, row.Baseline.PerSecond), 3)
		row.NotifyRatio = round(div(row.BaselineNotify.PerSecond, row.Baseline.PerSecond), 3)
		row.OneStatementRatio = round(div(row.System.PerSecond, row.OneStatement.PerSecond), 3)
		phase.Rows = append(phase.Rows, row)
	}
	return nil
}

// warmup is the unmeasured start of each closed-loop run.
func (b *bench) warmup() time.Duration { return min(time.Second, b.opts.Duration/5) }

// baselineSubmit runs the submit transaction's statements straight over
// pgx from c connections: postgres.Store.Submit's happy path, in its order,
// without HTTP, validation or the API. With notify, each transaction also
// calls pg_notify before COMMIT, while a LISTEN connection drains the
// notifications as the relay's would.
func (b *bench) baselineSubmit(ctx context.Context, c int, notify bool) (Throughput, error) {
	pool, err := b.baselinePool(ctx, c)
	if err != nil {
		return Throughput{}, err
	}
	defer pool.Close()
	if notify {
		stop, err := drainNotifications(ctx, b.dbURL)
		if err != nil {
			return Throughput{}, err
		}
		defer stop()
	}
	tag := "base"
	if notify {
		tag = "notify"
	}
	return closedLoop(ctx, c, b.warmup(), b.opts.Duration, func(ctx context.Context) error {
		s, err := b.newSubmission(tag)
		if err != nil {
			return err
		}
		return submitTx(ctx, pool, s, notify)
	}), nil
}

// oneStatementSubmit runs the API's one-statement submit
// (SubmissionInsert, autocommit) straight over pgx from c connections: the
// same writes as the transaction in one round trip, the fastest raw form
// of them, without HTTP, validation or the API.
func (b *bench) oneStatementSubmit(ctx context.Context, c int) (Throughput, error) {
	pool, err := b.baselinePool(ctx, c)
	if err != nil {
		return Throughput{}, err
	}
	defer pool.Close()
	q := dbsqlc.New(pool)
	return closedLoop(ctx, c, b.warmup(), b.opts.Duration, func(ctx context.Context) error {
		s, err := b.newSubmission("one")
		if err != nil {
			return err
		}
		n, err := q.SubmissionInsert(ctx, s.oneStatement())
		if err != nil {
			return fmt.Errorf("submission insert: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("submission insert: %d applications stored", n)
		}
		return nil
	}), nil
}

// baselinePool is a pool of c connections, all open, for a baseline run.
// The caller closes it.
func (b *bench) baselinePool(ctx context.Context, c int) (*pgxpool.Pool, error) {
	pool, err := postgres.NewPool(ctx, b.dbURL, &postgres.PoolOpts{MaxConns: int32(c), ApplicationName: "intake-bench"})
	if err != nil {
		return nil, err
	}
	if err := warmPool(ctx, pool, c); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// submission is one submit transaction's parameters.
type submission struct {
	claim    dbsqlc.IdempotencyKeyClaimParams
	app      dbsqlc.ApplicationInsertParams
	event    dbsqlc.OutboxEventInsertParams
	complete dbsqlc.IdempotencyKeyCompleteParams
}

// newSubmission prepares what the API prepares before its transaction (ids,
// fingerprint, the stored receipt), for a unique key and email.
func (b *bench) newSubmission(tag string) (submission, error) {
	n := strconv.FormatInt(b.next(), 10)
	key := tag + "-" + b.runID + "-" + n
	email := tag + "-" + n + "@example.com"
	id, err := uuid.NewV7()
	if err != nil {
		return submission{}, err
	}
	eventID, err := uuid.NewV7()
	if err != nil {
		return submission{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	fingerprint := sha256.Sum256([]byte(key + "\x00" + email))
	body, err := json.Marshal(map[string]any{
		"id":          id.String(),
		"job":         benchSlug,
		"received_at": now,
	})
	if err != nil {
		return submission{}, err
	}
	payload, err := json.Marshal(map[string]string{"application_id": id.String(), "posting_slug": benchSlug})
	if err != nil {
		return submission{}, err
	}
	return submission{
		claim: dbsqlc.IdempotencyKeyClaimParams{Key: key, Fingerprint: fingerprint[:], ExpiresAt: now.Add(48 * time.Hour)},
		app: dbsqlc.ApplicationInsertParams{
			ID:              id,
			FullName:        benchName,
			Email:           email,
			EmailNormalized: email,
			Phone:           pgtype.Text{String: benchPhone, Valid: true},
			Links:           []string{benchLink},
			ReceivedAt:      now,
			PostingSlug:     benchSlug,
			Answers:         []byte("{}"),
		},
		event: dbsqlc.OutboxEventInsertParams{ID: eventID, Kind: application.EventSubmitted, AggregateID: id, Payload: payload},
		complete: dbsqlc.IdempotencyKeyCompleteParams{
			Key: key, ApplicationID: id, ResponseStatus: http.StatusCreated, ResponseBody: body,
		},
	}, nil
}

// oneStatement is the same writes as SubmissionInsert's parameters.
func (s submission) oneStatement() dbsqlc.SubmissionInsertParams {
	return dbsqlc.SubmissionInsertParams{
		PostingSlug:     s.app.PostingSlug,
		Key:             s.claim.Key,
		Fingerprint:     s.claim.Fingerprint,
		ExpiresAt:       s.claim.ExpiresAt,
		ID:              s.app.ID,
		ResponseStatus:  s.complete.ResponseStatus,
		ResponseBody:    s.complete.ResponseBody,
		EmailNormalized: s.app.EmailNormalized,
		FullName:        s.app.FullName,
		Email:           s.app.Email,
		Phone:           s.app.Phone,
		CoverLetter:     s.app.CoverLetter,
		Links:           s.app.Links,
		ReceivedAt:      s.app.ReceivedAt,
		Answers:         s.app.Answers,
		EventID:         s.event.ID,
		Kind:            s.event.Kind,
		Payload:         s.event.Payload,
	}
}

// submitTx is postgres.Store.Submit's transaction on its happy path: BEGIN,
// IdempotencyKeyClaim, ApplicationInsert, OutboxEventInsert,
// IdempotencyKeyComplete (then OutboxNotify with notify), COMMIT.
func submitTx(ctx context.Context, pool *pgxpool.Pool, s submission, notify bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := dbsqlc.New(tx)
		if _, err := q.IdempotencyKeyClaim(ctx, s.claim); err != nil {
			return fmt.Errorf("claim key: %w", err)
		}
		if _, err := q.ApplicationInsert(ctx, s.app); err != nil {
			return fmt.Errorf("insert application: %w", err)
		}
		if err := q.OutboxEventInsert(ctx, s.event); err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		n, err := q.IdempotencyKeyComplete(ctx, s.complete)
		if err != nil {
			return fmt.Errorf("complete key: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("complete key: %d rows", n)
		}
		if notify {
			if err := q.OutboxNotify(ctx, postgres.OutboxChannel); err != nil {
				return fmt.Errorf("notify: %w", err)
			}
		}
		return nil
	})
}

// warmPool opens n connections before the clock starts. When the server
// is out of connections (others share it), it keeps trying for a while.
func warmPool(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(conns) < n {
		c, err := pool.Acquire(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "53300" && time.Now().Before(deadline) { // too_many_connections
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

// drainNotifications LISTENs on the relay's channel and reads whatever
// arrives, as a running relay would, until stop is called.
func drainNotifications(ctx context.Context, dbURL string) (stop func(), err error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{postgres.OutboxChannel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	listenCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if _, err := conn.WaitForNotification(listenCtx); err != nil {
				return
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		_ = conn.Close(context.WithoutCancel(ctx))
	}, nil
}

// systemSubmit posts applications to the API from c keep-alive clients.
func (b *bench) systemSubmit(ctx context.Context, client *http.Client, baseURL string, c int) Throughput {
	return closedLoop(ctx, c, b.warmup(), b.opts.Duration, func(ctx context.Context) error {
		_, err := b.post(ctx, client, baseURL, "sys")
		return err
	})
}

// post submits one application with a unique key and email and returns
// the new application's id.
func (b *bench) post(ctx context.Context, client *http.Client, baseURL, tag string) (string, error) {
	res, err := b.submit(ctx, client, baseURL, tag)
	if err != nil {
		return "", err
	}
	if res.status != http.StatusCreated {
		return "", fmt.Errorf("status %d: %.200s", res.status, res.body)
	}
	return res.id, nil
}

// submitResult is the API's answer to one application.
type submitResult struct {
	status     int
	retryAfter string
	id         string // for a 201
	body       []byte
}

// submit posts a new application (its own key and email) and returns the
// answer, whatever its status.
func (b *bench) submit(ctx context.Context, client *http.Client, baseURL, tag string) (submitResult, error) {
	n := strconv.FormatInt(b.next(), 10)
	body := `{"full_name":"` + benchName + `","email":"` + tag + "-" + n + `@example.com","phone":"` + benchPhone +
		`","links":["` + benchLink + `"]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/jobs/"+benchSlug+"/applications", strings.NewReader(body))
	if err != nil {
		return submitResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", tag+"-"+b.runID+"-"+n)
	resp, err := client.Do(req)
	if err != nil {
		return submitResult{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return submitResult{}, err
	}
	res := submitResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: data}
	if resp.StatusCode != http.StatusCreated {
		return res, nil
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &created); err != nil || created.ID == "" {
		return res, errors.New("201 without an id")
	}
	res.id = created.ID
	return res, nil
}

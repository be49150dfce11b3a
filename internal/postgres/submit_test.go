package postgres_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// submitBundle is what a Submit test works with: a fresh database with one
// open posting, a store over it, and a pool for assertions.
type submitBundle struct {
	pool  *pgxpool.Pool
	dbURL string
	store *postgres.Store
	slug  string
}

func setupSubmit(t *testing.T) *submitBundle {
	t.Helper()
	pool, dbURL := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	_, err := store.CreatePosting(t.Context(), application.NewPosting{Slug: "engineer", Title: "Engineer"})
	require.NoError(t, err)
	return &submitBundle{pool: pool, dbURL: dbURL, store: store, slug: "engineer"}
}

// submissionOpts says what a test submission differs in; zero values give
// a valid submission to the bundle's posting.
type submissionOpts struct {
	Slug  string
	Key   string
	Email string
	// Request names the request the fingerprint is taken of; the same
	// Request gives the same fingerprint.
	Request string
	// KeyTTL is how long after now the key is to expire; 48h (the API's
	// default) when zero.
	KeyTTL time.Duration
}

// newSubmission builds a submission the way the API does: fresh ids, a
// 32-byte fingerprint, a 201 response naming the new id.
func newSubmission(t testing.TB, opts submissionOpts) application.Submission {
	t.Helper()
	if opts.Key == "" {
		opts.Key = "key-" + rand.Text()
	}
	if opts.Email == "" {
		opts.Email = "Ada.Lovelace@Example.com"
	}
	if opts.Request == "" {
		opts.Request = "request-a"
	}
	if opts.KeyTTL == 0 {
		opts.KeyTTL = 48 * time.Hour
	}
	id, err := uuid.NewV7()
	require.NoError(t, err)
	eventID, err := uuid.NewV7()
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Microsecond)
	fp := sha256.Sum256([]byte(opts.Request))
	return application.Submission{
		ID:          id.String(),
		EventID:     eventID.String(),
		PostingSlug: opts.Slug,
		Applicant: application.Applicant{
			FullName:    "Ada Lovelace",
			Email:       opts.Email,
			Phone:       "+44 20 7946 0000",
			CoverLetter: "I like engines.",
			Links:       []string{"https://example.com/ada"},
		},
		EmailNormalized: application.NormalizeEmail(opts.Email),
		ReceivedAt:      now,
		IdempotencyKey:  opts.Key,
		Fingerprint:     fp[:],
		KeyExpiresAt:    now.Add(opts.KeyTTL),
		ResponseStatus:  201,
		ResponseBody:    fmt.Appendf(nil, `{"id":%q}`, id),
	}
}

func (b *submitBundle) submission(t testing.TB, opts submissionOpts) application.Submission {
	t.Helper()
	if opts.Slug == "" {
		opts.Slug = b.slug
	}
	return newSubmission(t, opts)
}

// counts returns the number of applications, outbox events and idempotency
// keys, in that order.
func counts(t testing.TB, pool *pgxpool.Pool) [3]int {
	t.Helper()
	var c [3]int
	err := pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM applications),
		       (SELECT count(*) FROM outbox_events),
		       (SELECT count(*) FROM idempotency_keys)`).Scan(&c[0], &c[1], &c[2])
	require.NoError(t, err)
	return c
}

func TestSubmitStoresApplicationEventAndKey(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	sub := b.submission(t, submissionOpts{Email: "  Ada.Lovelace@Example.COM"})
	sub.Applicant.Email = strings.TrimSpace(sub.Applicant.Email)

	res, err := b.store.Submit(ctx, sub)
	require.NoError(t, err)
	require.Equal(t, application.SubmitResult{Status: 201, Body: sub.ResponseBody}, res)
	require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))

	var (
		appID, postingSlug, fullName, email, emailNorm string
		receivedAt                                     time.Time
	)
	err = b.pool.QueryRow(ctx, `
		SELECT a.id::text, p.slug, a.full_name, a.email, a.email_normalized, a.received_at
		FROM applications a JOIN postings p ON p.id = a.posting_id`).
		Scan(&appID, &postingSlug, &fullName, &email, &emailNorm, &receivedAt)
	require.NoError(t, err)
	require.Equal(t, sub.ID, appID)
	require.Equal(t, b.slug, postingSlug)
	require.Equal(t, "Ada Lovelace", fullName)
	require.Equal(t, "Ada.Lovelace@Example.COM", email)
	require.Equal(t, "ada.lovelace@example.com", emailNorm)
	require.True(t, sub.ReceivedAt.Equal(receivedAt), "received_at %v, want %v", receivedAt, sub.ReceivedAt)

	var (
		eventID, kind, aggregateID string
		payload                    []byte
		dispatched                 bool
	)
	err = b.pool.QueryRow(ctx, `
		SELECT id::text, kind, aggregate_id::text, payload::text, dispatched_at IS NOT NULL
		FROM outbox_events`).Scan(&eventID, &kind, &aggregateID, &payload, &dispatched)
	require.NoError(t, err)
	require.Equal(t, sub.EventID, eventID)
	require.Equal(t, application.EventSubmitted, kind)
	require.Equal(t, "application.submitted", kind)
	require.Equal(t, sub.ID, aggregateID)
	require.False(t, dispatched)

	// Invariant 8: ids only in the payload.
	var fields map[string]any
	require.NoError(t, json.Unmarshal(payload, &fields))
	require.Equal(t, map[string]any{"application_id": sub.ID, "posting_slug": b.slug}, fields)
	// Fragments short enough to occur in a UUID's hex ("ada", digits) are
	// not checked: the exact map above already allows nothing else.
	lower := strings.ToLower(string(payload))
	for _, personal := range []string{
		sub.Applicant.FullName, "lovelace", sub.EmailNormalized, "example.com",
		sub.Applicant.Phone, sub.Applicant.CoverLetter, "engines",
	} {
		require.NotContains(t, lower, strings.ToLower(personal), "event payload carries personal data")
	}

	var (
		state          string
		fingerprint    []byte
		keyAppID       string
		responseStatus int
		responseBody   []byte
		lifetimeOK     bool
		createdAt      time.Time
		expiresAt      time.Time
	)
	err = b.pool.QueryRow(ctx, `
		SELECT state, fingerprint, application_id::text, response_status, response_body,
		       expires_at >= created_at + interval '24 hours', created_at, expires_at
		FROM idempotency_keys WHERE key = $1`, sub.IdempotencyKey).
		Scan(&state, &fingerprint, &keyAppID, &responseStatus, &responseBody, &lifetimeOK, &createdAt, &expiresAt)
	require.NoError(t, err)
	require.Equal(t, "completed", state)
	require.Equal(t, sub.Fingerprint, fingerprint)
	require.Equal(t, sub.ID, keyAppID)
	require.Equal(t, 201, responseStatus)
	require.Equal(t, sub.ResponseBody, responseBody)
	require.True(t, lifetimeOK, "key expires at %v, created at %v: less than 24h", expiresAt, createdAt)
	require.True(t, sub.KeyExpiresAt.Equal(expiresAt), "expires_at %v, want %v", expiresAt, sub.KeyExpiresAt)
}

// Invariant 3: keys live at least 24h, also when the caller asks for exactly
// 24h (the shortest INTAKE_IDEMPOTENCY_TTL) from a clock read before the
// transaction began, or from a clock behind the database's.
func TestSubmitKeyLivesAtLeast24Hours(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		expiresAt func(now time.Time) time.Time
	}{
		{"ttl 24h", func(now time.Time) time.Time { return now.Add(application.MinIdempotencyKeyTTL) }},
		{"caller clock an hour behind", func(now time.Time) time.Time { return now.Add(-time.Hour + application.MinIdempotencyKeyTTL) }},
		{"ttl shorter than 24h", func(now time.Time) time.Time { return now.Add(-time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSubmit(t)
			sub := b.submission(t, submissionOpts{})
			sub.KeyExpiresAt = tt.expiresAt(time.Now())

			_, err := b.store.Submit(t.Context(), sub)
			require.NoError(t, err)

			var lifetime time.Duration
			require.NoError(t, b.pool.QueryRow(t.Context(),
				`SELECT expires_at - created_at FROM idempotency_keys WHERE key = $1`, sub.IdempotencyKey).Scan(&lifetime))
			require.GreaterOrEqual(t, lifetime, 24*time.Hour)
		})
	}
}

func TestSubmitReplaysCompletedKey(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	first := b.submission(t, submissionOpts{Key: "retry-me"})
	_, err := b.store.Submit(ctx, first)
	require.NoError(t, err)

	// A retry of the same request gets new ids and a new response from the
	// API; the stored response must win.
	retry := b.submission(t, submissionOpts{Key: "retry-me"})
	require.NotEqual(t, first.ResponseBody, retry.ResponseBody)
	require.Equal(t, first.Fingerprint, retry.Fingerprint)

	res, err := b.store.Submit(ctx, retry)
	require.NoError(t, err)
	require.Equal(t, application.SubmitResult{Status: 201, Body: first.ResponseBody, Replayed: true}, res)
	require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))

	var id string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id::text FROM applications`).Scan(&id))
	require.Equal(t, first.ID, id)
}

func TestSubmitRefuses(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		// before runs on the bundle before the submission under test.
		before func(t *testing.T, b *submitBundle)
		sub    submissionOpts
		want   error
		// counts are applications, events and keys afterwards.
		counts [3]int
	}{
		{
			name: "same key other request",
			before: func(t *testing.T, b *submitBundle) {
				_, err := b.store.Submit(t.Context(), b.submission(t, submissionOpts{Key: "k1", Request: "request-a"}))
				require.NoError(t, err)
			},
			sub:    submissionOpts{Key: "k1", Email: "someone.else@example.com", Request: "request-b"},
			want:   application.ErrIdempotencyKeyReused,
			counts: [3]int{1, 1, 1},
		},
		{
			name:   "unknown posting",
			sub:    submissionOpts{Slug: "no-such-posting"},
			want:   application.ErrNotFound,
			counts: [3]int{0, 0, 0},
		},
		{
			name: "closed posting",
			before: func(t *testing.T, b *submitBundle) {
				closed := application.PostingClosed
				_, err := b.store.UpdatePosting(t.Context(), access.Caller{Actor: access.ActorSystem}, b.slug, application.PostingPatch{Status: &closed})
				require.NoError(t, err)
			},
			want:   application.ErrPostingClosed,
			counts: [3]int{0, 0, 0},
		},
		{
			name: "same posting and normalised email under another key",
			before: func(t *testing.T, b *submitBundle) {
				_, err := b.store.Submit(t.Context(), b.submission(t, submissionOpts{Key: "k1", Email: "Ada@Example.com"}))
				require.NoError(t, err)
			},
			sub:    submissionOpts{Key: "k2", Email: "ada@EXAMPLE.com", Request: "request-b"},
			want:   application.ErrDuplicateApplication,
			counts: [3]int{1, 1, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSubmit(t)
			if tt.before != nil {
				tt.before(t, b)
			}
			sub := b.submission(t, tt.sub)

			res, err := b.store.Submit(t.Context(), sub)
			require.ErrorIs(t, err, tt.want)
			require.Zero(t, res)
			require.Equal(t, tt.counts, counts(t, b.pool))

			// Nothing of the refused submission is stored, under its key or
			// otherwise.
			var n int
			require.NoError(t, b.pool.QueryRow(t.Context(), `
				SELECT (SELECT count(*) FROM applications WHERE id = $1)
				     + (SELECT count(*) FROM outbox_events WHERE id = $2)
				     + (SELECT count(*) FROM idempotency_keys WHERE key = $3 AND fingerprint = $4)`,
				sub.ID, sub.EventID, sub.IdempotencyKey, sub.Fingerprint).Scan(&n))
			require.Zero(t, n)
		})
	}
}

// holdKey claims key in a transaction of its own and keeps it uncommitted
// (as a request still running would) until the returned tx ends. The
// transaction is rolled back when the test ends if nothing else ended it.
func holdKey(t *testing.T, pool *pgxpool.Pool, key string, fingerprint []byte) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	_, err = tx.Exec(t.Context(), `
		INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)
		VALUES ($1, $2, 'processing', now() + interval '24 hours')`, key, fingerprint)
	require.NoError(t, err)
	return tx
}

func openPool(t *testing.T, dbURL string, opts *postgres.PoolOpts) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.NewPool(t.Context(), dbURL, opts)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func TestSubmitKeyInFlight(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	sub := b.submission(t, submissionOpts{Key: "busy"})
	holder := holdKey(t, b.pool, sub.IdempotencyKey, sub.Fingerprint)

	store := postgres.NewStore(openPool(t, b.dbURL, &postgres.PoolOpts{LockTimeout: 200 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // fail, not hang, if lock_timeout is lost
	defer cancel()
	start := time.Now()
	res, err := store.Submit(ctx, sub)
	elapsed := time.Since(start)

	require.ErrorIs(t, err, application.ErrIdempotencyKeyInFlight)
	require.NotErrorIs(t, err, application.ErrUnavailable)
	require.Zero(t, res)
	require.GreaterOrEqual(t, elapsed, 200*time.Millisecond, "gave up before lock_timeout")
	require.Less(t, elapsed, 2*time.Second, "waited far longer than lock_timeout")

	require.NoError(t, holder.Rollback(t.Context()))
	require.Equal(t, [3]int{0, 0, 0}, counts(t, b.pool))
}

func TestSubmitWaitsForKeyHolderThenReplays(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()

	// The first request: claimed its key and is still running.
	first := b.submission(t, submissionOpts{Key: "slow"})
	holder := holdKey(t, b.pool, first.IdempotencyKey, first.Fingerprint)
	_, err := holder.Exec(ctx, `
		INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
		SELECT $1, id, $2, $3, $4, $5 FROM postings WHERE slug = $6`,
		first.ID, first.Applicant.FullName, first.Applicant.Email, first.EmailNormalized,
		first.ReceivedAt, first.PostingSlug)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `
		INSERT INTO outbox_events (id, kind, aggregate_id, payload)
		VALUES ($1, 'application.submitted', $2, '{}')`, first.EventID, first.ID)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `
		UPDATE idempotency_keys
		SET state = 'completed', application_id = $2, response_status = 201, response_body = $3
		WHERE key = $1`, first.IdempotencyKey, first.ID, first.ResponseBody)
	require.NoError(t, err)

	// The retry arrives while the first request runs; the first commits
	// about 300ms later, well inside the retry's 5s lock_timeout.
	holderPID := holder.Conn().PgConn().PID()
	committed := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		committed <- commitWhenBlocking(ctx, b.pool, holder, holderPID, 300*time.Millisecond)
	})

	store := postgres.NewStore(openPool(t, b.dbURL, &postgres.PoolOpts{LockTimeout: 5 * time.Second}))
	retry := b.submission(t, submissionOpts{Key: "slow"})
	submitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := store.Submit(submitCtx, retry)
	elapsed := time.Since(start)

	require.NoError(t, <-committed)
	require.NoError(t, err)
	require.Equal(t, application.SubmitResult{Status: 201, Body: first.ResponseBody, Replayed: true}, res)
	require.GreaterOrEqual(t, elapsed, 300*time.Millisecond, "answered before the key holder committed")
	require.Less(t, elapsed, 5*time.Second)
	require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
}

// commitWhenBlocking commits tx once some other session is waiting for one
// of its locks and hold has passed since then.
func commitWhenBlocking(ctx context.Context, pool *pgxpool.Pool, tx pgx.Tx, pid uint32, hold time.Duration) error {
	if err := waitUntilBlocking(ctx, pool, pid); err != nil {
		return err
	}
	// Keep the waiter waiting a while: it must not answer before this.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(hold):
	}
	return tx.Commit(ctx)
}

// waitUntilBlocking returns once some other session waits for one of
// pid's locks, or an error after 5 s of none.
func waitUntilBlocking(ctx context.Context, pool *pgxpool.Pool, pid uint32) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting bool
		err := pool.QueryRow(ctx,
			`SELECT count(*) > 0 FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid))`,
			int32(pid)).Scan(&waiting)
		if err != nil {
			return err
		}
		if waiting {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("no session ever waited for the key holder")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestSubmitDatabaseUnavailable(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		// addr returns a host:port for the pool to use.
		addr func(t *testing.T) string
		// deadline bounds the call; none leaves it to NewPool's connect
		// timeout (5s).
		deadline time.Duration
		within   time.Duration
	}{
		{name: "nothing listens", addr: closedPort, deadline: 500 * time.Millisecond, within: time.Second},
		{name: "listener never answers", addr: silentListener, deadline: 500 * time.Millisecond, within: 2 * time.Second},
		{name: "listener never answers, no deadline", addr: silentListener, within: 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbURL := "postgres://postgres@" + tt.addr(t) + "/intake?sslmode=disable"
			pool := openPool(t, dbURL, &postgres.PoolOpts{LockTimeout: 200 * time.Millisecond})
			store := postgres.NewStore(pool)

			ctx := t.Context()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			type result struct {
				res application.SubmitResult
				err error
			}
			sub := newSubmission(t, submissionOpts{Slug: "engineer"})
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				res, err := store.Submit(ctx, sub)
				done <- result{res, err}
			}()
			var got result
			select {
			case got = <-done:
			case <-time.After(tt.within):
				t.Fatalf("Submit still running after %v", tt.within)
			}
			elapsed := time.Since(start)

			require.ErrorIs(t, got.err, application.ErrUnavailable)
			require.Zero(t, got.res)
			t.Logf("failed after %v: %v", elapsed.Round(time.Millisecond), got.err)
		})
	}
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// silentListener returns the address of a listener that accepts connections
// and never says a word on them.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

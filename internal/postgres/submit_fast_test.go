package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// These tests show which form of the submit runs: the one statement
// (SubmissionInsert) for an ordinary submit, and the transaction, after
// it, for every case the statement does not store. They read the
// statements each Submit sends from a pgx tracer on the store's own pool:
// every statement is a round trip, so the list is what the submit costs.

// statementLog is a pgx.QueryTracer that records each statement's name:
// a sqlc query's name, or the SQL itself (begin, commit, rollback), and
// after it the SQLSTATE when the statement failed.
type statementLog struct {
	mu    sync.Mutex
	names []string
}

// statementIndex is where TraceQueryStart put a statement in the log,
// for TraceQueryEnd.
type statementIndex struct{}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	name := strings.TrimSpace(d.SQL)
	if rest, ok := strings.CutPrefix(name, "-- name: "); ok {
		name = strings.Fields(rest)[0]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, name)
	return context.WithValue(ctx, statementIndex{}, len(l.names)-1)
}

func (l *statementLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	var pgErr *pgconn.PgError
	if !errors.As(d.Err, &pgErr) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i, ok := ctx.Value(statementIndex{}).(int); ok && i < len(l.names) {
		l.names[i] += " " + pgErr.Code
	}
}

// take returns the statements recorded since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := l.names
	l.names = nil
	return names
}

// tracedStore is a store over the bundle's database on a pool of its own
// whose statements land in the returned log. A positive lockTimeout
// bounds its lock waits, as the API's INTAKE_IDEMPOTENCY_WAIT does.
func (b *submitBundle) tracedStore(t *testing.T, lockTimeout time.Duration) (*postgres.Store, *statementLog) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.dbURL)
	require.NoError(t, err)
	log := &statementLog{}
	cfg.ConnConfig.Tracer = log
	if lockTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["lock_timeout"] = strconv.FormatInt(lockTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return postgres.NewStore(pool), log
}

// The statements of each form, as the log names them.
var (
	oneStatement = []string{"SubmissionInsert"}
	// thenReplay and thenReuse are the transaction after the statement
	// found the key used, without an error: by the same request (the
	// replay commits, having written nothing) or by another one.
	thenReplay = []string{"SubmissionInsert", "begin", "IdempotencyKeyClaim", "IdempotencyKeyGet", "commit"}
	thenReuse  = []string{"SubmissionInsert", "begin", "IdempotencyKeyClaim", "IdempotencyKeyGet", "rollback"}
	// thenRefuse is the transaction after the statement found the posting
	// closed or unknown, or the email used, without an error.
	thenRefuse = []string{"SubmissionInsert", "begin", "IdempotencyKeyClaim", "ApplicationInsert", "PostingGetBySlug", "rollback"}
)

// undoneBy is statements with the first one, SubmissionInsert, failed with
// code: what a concurrent commit does to it.
func undoneBy(code string, statements []string) []string {
	return append([]string{statements[0] + " " + code}, statements[1:]...)
}

// requireStoredOnce checks that the submission is stored, all of it, once:
// its application, its event, and its key completed with its response and
// pointing at it.
func requireStoredOnce(t *testing.T, pool *pgxpool.Pool, sub application.Submission) {
	t.Helper()
	var apps, events, keys int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT (SELECT count(*) FROM applications WHERE id = $1),
		       (SELECT count(*) FROM outbox_events WHERE aggregate_id = $1 AND id = $2
		                                             AND kind = 'application.submitted'),
		       (SELECT count(*) FROM idempotency_keys
		        WHERE key = $3 AND application_id = $1 AND state = 'completed'
		          AND fingerprint = $4 AND response_status = $5 AND response_body = $6)`,
		sub.ID, sub.EventID, sub.IdempotencyKey, sub.Fingerprint, sub.ResponseStatus, sub.ResponseBody,
	).Scan(&apps, &events, &keys))
	require.Equal(t, [3]int{1, 1, 1}, [3]int{apps, events, keys}, "application, event, key")
}

// requireWhole checks invariant 1 and "no key pointing at nothing" over the
// whole database: every application has its event and a key, every event
// and every key has its application.
func requireWhole(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var broken int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT (SELECT count(*) FROM applications a
		        WHERE NOT EXISTS (SELECT 1 FROM outbox_events e WHERE e.aggregate_id = a.id)
		           OR NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.application_id = a.id))
		     + (SELECT count(*) FROM idempotency_keys k
		        WHERE k.state <> 'completed'
		           OR NOT EXISTS (SELECT 1 FROM applications a WHERE a.id = k.application_id))`,
	).Scan(&broken))
	require.Zero(t, broken, "applications without their event or key, keys without their application")
}

func TestSubmitOrdinaryIsOneStatement(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	store, log := b.tracedStore(t, 0)
	sub := b.submission(t, submissionOpts{})
	sub.Applicant.Answers = application.Answers{"remote": true}

	res, err := store.Submit(t.Context(), sub)
	require.NoError(t, err)
	require.Equal(t, application.SubmitResult{Status: 201, Body: sub.ResponseBody}, res)
	require.Equal(t, oneStatement, log.take())
	requireStoredOnce(t, b.pool, sub)

	// Every field the transaction stores, the statement stores.
	var (
		phone, cover, answers string
		links                 []string
		lifetime              time.Duration
	)
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		SELECT a.phone, a.cover_letter, a.links, a.answers::text, k.expires_at - k.created_at
		FROM applications a JOIN idempotency_keys k ON k.application_id = a.id`).
		Scan(&phone, &cover, &links, &answers, &lifetime))
	require.Equal(t, sub.Applicant.Phone, phone)
	require.Equal(t, sub.Applicant.CoverLetter, cover)
	require.Equal(t, sub.Applicant.Links, links)
	require.JSONEq(t, `{"remote": true}`, answers)
	require.GreaterOrEqual(t, lifetime, 24*time.Hour)
}

func TestSubmitWithCVIsTheTransaction(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	store, log := b.tracedStore(t, 0)
	sub := b.submission(t, submissionOpts{})
	content := []byte("Ada Lovelace, analyst.\n")
	sub.CV = &application.File{Filename: "cv.txt", ContentType: "text/plain; charset=utf-8", Content: content, SHA256: sha256.Sum256(content)}

	res, err := store.Submit(t.Context(), sub)
	require.NoError(t, err)
	require.False(t, res.Replayed)
	require.Equal(t, []string{
		"begin", "IdempotencyKeyClaim", "ApplicationInsert", "ApplicationFileInsert",
		"OutboxEventInsert", "IdempotencyKeyComplete", "commit",
	}, log.take())
	requireStoredOnce(t, b.pool, sub)
}

// Each case the statement does not store reaches the transaction, which
// answers it as before, and nothing of the refused submission is stored.
func TestSubmitFallsBackToTheTransaction(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		before func(t *testing.T, b *submitBundle) application.Submission
		sub    submissionOpts
		// want is the error, or with none the first submission's response,
		// replayed.
		want       error
		statements []string
	}{
		{
			name:       "same key same request: replay",
			before:     submitFirst(submissionOpts{Key: "k1"}),
			sub:        submissionOpts{Key: "k1"},
			statements: thenReplay,
		},
		{
			name:       "same key other request: reused",
			before:     submitFirst(submissionOpts{Key: "k1"}),
			sub:        submissionOpts{Key: "k1", Email: "someone.else@example.com", Request: "request-b"},
			want:       application.ErrIdempotencyKeyReused,
			statements: thenReuse,
		},
		{
			name:       "same posting and normalised email under another key: duplicate",
			before:     submitFirst(submissionOpts{Key: "k1", Email: "Ada@Example.com"}),
			sub:        submissionOpts{Key: "k2", Email: "ada@EXAMPLE.com", Request: "request-b"},
			want:       application.ErrDuplicateApplication,
			statements: thenRefuse,
		},
		{
			name: "closed posting",
			before: func(t *testing.T, b *submitBundle) application.Submission {
				closed := application.PostingClosed
				_, err := b.store.UpdatePosting(t.Context(), access.Caller{Actor: access.ActorSystem}, b.slug, application.PostingPatch{Status: &closed})
				require.NoError(t, err)
				return application.Submission{}
			},
			want:       application.ErrPostingClosed,
			statements: thenRefuse,
		},
		{
			name:       "unknown posting",
			sub:        submissionOpts{Slug: "no-such-posting"},
			want:       application.ErrNotFound,
			statements: thenRefuse,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSubmit(t)
			var first application.Submission
			if tt.before != nil {
				first = tt.before(t, b)
			}
			before := counts(t, b.pool)
			store, log := b.tracedStore(t, 0)
			sub := b.submission(t, tt.sub)

			res, err := store.Submit(t.Context(), sub)
			require.Equal(t, tt.statements, log.take())
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				require.Zero(t, res)
			} else {
				require.NoError(t, err)
				require.Equal(t, application.SubmitResult{Status: 201, Body: first.ResponseBody, Replayed: true}, res)
			}
			require.Equal(t, before, counts(t, b.pool), "applications, events, keys")
			requireNothingOf(t, b.pool, sub)
		})
	}
}

// submitFirst returns a test step that stores a first submission and
// returns it.
func submitFirst(opts submissionOpts) func(t *testing.T, b *submitBundle) application.Submission {
	return func(t *testing.T, b *submitBundle) application.Submission {
		t.Helper()
		first := b.submission(t, opts)
		_, err := b.store.Submit(t.Context(), first)
		require.NoError(t, err)
		return first
	}
}

// requireNothingOf checks that none of sub's rows is stored: its
// application, its event, a key pointing at its application. (A new key
// under its name shows in the counts, which callers compare.)
func requireNothingOf(t *testing.T, pool *pgxpool.Pool, sub application.Submission) {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT (SELECT count(*) FROM applications WHERE id = $1)
		     + (SELECT count(*) FROM outbox_events WHERE id = $2)
		     + (SELECT count(*) FROM idempotency_keys WHERE application_id = $1)`,
		sub.ID, sub.EventID).Scan(&n))
	require.Zero(t, n, "rows of the refused submission")
}

// A request holding the key past lock_timeout is answered 409 in flight
// by the statement itself: one wait, not a second one in the transaction.
func TestSubmitKeyInFlightIsOneWait(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	sub := b.submission(t, submissionOpts{Key: "busy"})
	holder := holdKey(t, b.pool, sub.IdempotencyKey, sub.Fingerprint)
	store, log := b.tracedStore(t, 200*time.Millisecond)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // fail, not hang, if lock_timeout is lost
	defer cancel()
	res, err := store.Submit(ctx, sub)
	require.ErrorIs(t, err, application.ErrIdempotencyKeyInFlight)
	require.NotErrorIs(t, err, application.ErrUnavailable)
	require.Zero(t, res)
	require.Equal(t, []string{"SubmissionInsert 55P03"}, log.take())

	require.NoError(t, holder.Rollback(t.Context()))
	require.Equal(t, [3]int{0, 0, 0}, counts(t, b.pool))
}

// The key committed by another request while the statement waited for it
// undoes the statement (its application and event included), and the
// transaction replays or refuses.
func TestSubmitKeyCommittedWhileWaiting(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		sub        submissionOpts
		want       error
		statements []string
	}{
		{"same request: replay", submissionOpts{Key: "slow"}, nil, undoneBy("23505", thenReplay)},
		// Another email, so the statement's application would go in but
		// for the key.
		{"other request: reused", submissionOpts{Key: "slow", Email: "someone.else@example.com", Request: "request-b"}, application.ErrIdempotencyKeyReused, undoneBy("23505", thenReuse)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSubmit(t)
			ctx := t.Context()
			first := b.submission(t, submissionOpts{Key: "slow"})
			holder := holdSubmission(t, b.pool, first)
			committed := make(chan error, 1)
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				committed <- commitWhenBlocking(ctx, b.pool, holder, holder.Conn().PgConn().PID(), 100*time.Millisecond)
			})

			store, log := b.tracedStore(t, 5*time.Second)
			sub := b.submission(t, tt.sub)
			res, err := store.Submit(ctx, sub)
			require.NoError(t, <-committed)
			require.Equal(t, tt.statements, log.take())
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			} else {
				require.NoError(t, err)
				require.Equal(t, application.SubmitResult{Status: 201, Body: first.ResponseBody, Replayed: true}, res)
			}
			requireStoredOnce(t, b.pool, first)
			requireNothingOf(t, b.pool, sub)
			require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
			requireWhole(t, b.pool)
		})
	}
}

// holdSubmission writes sub the way the transaction does (key claimed,
// application, event, key completed) in a transaction it leaves open, as
// a request of an API replica still running it would. The transaction is
// rolled back when the test ends if nothing else ended it.
func holdSubmission(t *testing.T, pool *pgxpool.Pool, sub application.Submission) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	tx := holdKey(t, pool, sub.IdempotencyKey, sub.Fingerprint)
	_, err := tx.Exec(ctx, `
		INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
		SELECT $1, id, $2, $3, $4, $5 FROM postings WHERE slug = $6`,
		sub.ID, sub.Applicant.FullName, sub.Applicant.Email, sub.EmailNormalized, sub.ReceivedAt, sub.PostingSlug)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `
		INSERT INTO outbox_events (id, kind, aggregate_id, payload)
		VALUES ($1, 'application.submitted', $2, '{}')`, sub.EventID, sub.ID)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `
		UPDATE idempotency_keys
		SET state = 'completed', application_id = $2, response_status = $3, response_body = $4
		WHERE key = $1`, sub.IdempotencyKey, sub.ID, sub.ResponseStatus, sub.ResponseBody)
	require.NoError(t, err)
	return tx
}

// The same email committed under another key while the statement waited
// for it leaves the statement's key pointing at no application: the
// statement is undone whole, so that key is not stored (a retry under it
// with another email is a new submit, not a replay), and the transaction
// answers duplicate.
func TestSubmitEmailCommittedWhileWaiting(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	first := b.submission(t, submissionOpts{Key: "first"})
	holder := holdSubmission(t, b.pool, first)
	committed := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		committed <- commitWhenBlocking(ctx, b.pool, holder, holder.Conn().PgConn().PID(), 100*time.Millisecond)
	})

	store, log := b.tracedStore(t, 5*time.Second)
	sub := b.submission(t, submissionOpts{Key: "second", Request: "request-b"})
	res, err := store.Submit(ctx, sub)
	require.NoError(t, <-committed)
	require.ErrorIs(t, err, application.ErrDuplicateApplication)
	require.Zero(t, res)
	require.Equal(t, undoneBy("23503", thenRefuse), log.take())
	requireStoredOnce(t, b.pool, first)
	requireNothingOf(t, b.pool, sub)
	require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
	requireWhole(t, b.pool)

	retry := b.submission(t, submissionOpts{Key: "second", Email: "someone.else@example.com", Request: "request-c"})
	res, err = store.Submit(ctx, retry)
	require.NoError(t, err)
	require.Equal(t, application.SubmitResult{Status: 201, Body: retry.ResponseBody}, res)
	requireStoredOnce(t, b.pool, retry)
}

// The statement takes the key before the email, as the transaction does,
// so the two never deadlock: a transaction (a CV submit, or an API
// replica of the previous version) that holds the key and then inserts
// the same email while the statement waits for that key goes straight
// through, and the statement then replays or refuses.
func TestSubmitKeyBeforeEmail(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	ctx := t.Context()
	first := b.submission(t, submissionOpts{Key: "k", Request: "request-with-cv"})
	holder := holdKey(t, b.pool, first.IdempotencyKey, first.Fingerprint)
	holderPID := holder.Conn().PgConn().PID()

	store, log := b.tracedStore(t, 5*time.Second)
	sub := b.submission(t, submissionOpts{Key: "k"})
	type result struct {
		res application.SubmitResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := store.Submit(ctx, sub)
		done <- result{res, err}
	}()
	// Once the statement waits for the key, the holder inserts the same
	// email: with the email taken first, the two would wait for each other
	// until the deadlock detector killed one.
	require.NoError(t, commitWhenBlockingAfter(ctx, b.pool, holderPID, func() error {
		insertCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond) // under deadlock_timeout (1s)
		defer cancel()
		_, err := holder.Exec(insertCtx, `
			INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
			SELECT $1, id, $2, $3, $4, $5 FROM postings WHERE slug = $6`,
			first.ID, first.Applicant.FullName, first.Applicant.Email, first.EmailNormalized, first.ReceivedAt, first.PostingSlug)
		if err != nil {
			return err
		}
		if _, err := holder.Exec(ctx, `
			INSERT INTO outbox_events (id, kind, aggregate_id, payload)
			VALUES ($1, 'application.submitted', $2, '{}')`, first.EventID, first.ID); err != nil {
			return err
		}
		if _, err := holder.Exec(ctx, `
			UPDATE idempotency_keys
			SET state = 'completed', application_id = $2, response_status = $3, response_body = $4
			WHERE key = $1`, first.IdempotencyKey, first.ID, first.ResponseStatus, first.ResponseBody); err != nil {
			return err
		}
		return holder.Commit(ctx)
	}))

	got := <-done
	require.ErrorIs(t, got.err, application.ErrIdempotencyKeyReused)
	require.Equal(t, undoneBy("23505", thenReuse), log.take())
	requireStoredOnce(t, b.pool, first)
	requireNothingOf(t, b.pool, sub)
	require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
	requireWhole(t, b.pool)
}

// commitWhenBlockingAfter runs then once some other session waits for one
// of pid's locks.
func commitWhenBlockingAfter(ctx context.Context, pool *pgxpool.Pool, pid uint32, then func() error) error {
	if err := waitUntilBlocking(ctx, pool, pid); err != nil {
		return err
	}
	return then()
}

// Many requests at once, through the statement: one key, one application
// (invariant 3); one email, one application (invariant 2).
func TestSubmitConcurrent(t *testing.T) {
	t.Parallel()
	const n = 16

	t.Run("same key", func(t *testing.T) {
		t.Parallel()
		b := setupSubmit(t)
		subs := make([]application.Submission, n)
		for i := range subs {
			subs[i] = b.submission(t, submissionOpts{Key: "double-click"})
		}
		results, errs := submitAll(t, b.store, subs)

		var created []int
		for i, err := range errs {
			require.NoError(t, err, "request %d", i)
			if !results[i].Replayed {
				created = append(created, i)
			}
		}
		require.Len(t, created, 1, "requests answered as new")
		for _, res := range results {
			require.Equal(t, subs[created[0]].ResponseBody, res.Body, "every answer is the first one's")
		}
		require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
		requireStoredOnce(t, b.pool, subs[created[0]])
		requireWhole(t, b.pool)
	})

	t.Run("same email other keys", func(t *testing.T) {
		t.Parallel()
		b := setupSubmit(t)
		subs := make([]application.Submission, n)
		for i := range subs {
			subs[i] = b.submission(t, submissionOpts{Key: "key-" + strconv.Itoa(i), Request: "request-" + strconv.Itoa(i)})
		}
		results, errs := submitAll(t, b.store, subs)

		var created []int
		for i, err := range errs {
			if err == nil {
				require.False(t, results[i].Replayed)
				created = append(created, i)
				continue
			}
			require.ErrorIs(t, err, application.ErrDuplicateApplication, "request %d", i)
		}
		require.Len(t, created, 1, "requests stored")
		require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
		requireStoredOnce(t, b.pool, subs[created[0]])
		requireWhole(t, b.pool)
	})
}

// submitAll submits every submission at once, each from its own goroutine,
// and returns their results and errors in order.
func submitAll(t *testing.T, store *postgres.Store, subs []application.Submission) ([]application.SubmitResult, []error) {
	t.Helper()
	results := make([]application.SubmitResult, len(subs))
	errs := make([]error, len(subs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Go(func() {
			<-start
			results[i], errs[i] = store.Submit(t.Context(), sub)
		})
	}
	close(start)
	wg.Wait()
	return results, errs
}

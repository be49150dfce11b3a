package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// submittedPayload is the event's payload: ids only, so erasing an applicant
// never has to chase copies of their data (SPEC section 6).
type submittedPayload struct {
	ApplicationID uuid.UUID `json:"application_id"`
	PostingSlug   string    `json:"posting_slug"`
}

// Submit stores an application exactly once: the application, its CV if
// any, its application.submitted event and the response under its
// idempotency key, all of it or none of it.
//
// An ordinary submit (no CV) is one autocommit statement, SubmissionInsert:
// one round trip. When that did not store it (a key or an email already
// used, a posting closed or unknown), nothing was written, and the
// transaction runs as it always did: it claims the key, inserts the rows
// and completes the key, and it tells the cases apart.
//
// When the key was already used, nothing is inserted: the stored response is
// returned with Replayed set, or ErrIdempotencyKeyReused when the request
// differs. When another transaction holds the key, Submit waits for it (up
// to the pool's lock_timeout) and then replays its response, or returns
// ErrIdempotencyKeyInFlight.
func (s *Store) Submit(ctx context.Context, sub application.Submission) (application.SubmitResult, error) {
	rows, err := newSubmitRows(sub)
	if err != nil {
		return application.SubmitResult{}, err
	}
	// One connection for both forms, so a submit that falls back to the
	// transaction does not wait for the pool twice.
	conn, err := s.acquire(ctx)
	if err != nil {
		return application.SubmitResult{}, classify(err)
	}
	defer conn.Release()

	// A CV keeps the transaction: it is rare, and its bytea of up to
	// INTAKE_MAX_CV_BYTES costs far more than the round trips saved.
	if sub.CV == nil {
		stored, err := insertSubmission(ctx, dbsqlc.New(conn), sub, rows)
		if err != nil {
			return application.SubmitResult{}, classify(err)
		}
		if stored {
			return application.SubmitResult{Status: sub.ResponseStatus, Body: sub.ResponseBody}, nil
		}
	}

	var res application.SubmitResult
	err = classify(pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var err error
		res, err = submitTx(ctx, s.q.WithTx(tx), sub, rows)
		return err
	}))
	if err != nil {
		return application.SubmitResult{}, err
	}
	return res, nil
}

// submitRows is what both forms of the submit store besides the
// submission's own fields, derived once.
type submitRows struct {
	appID, eventID   uuid.UUID
	payload, answers []byte
}

// newSubmitRows parses the submission's ids and encodes its event payload
// and answers, before any round trip, so a malformed submission costs the
// database nothing.
func newSubmitRows(sub application.Submission) (submitRows, error) {
	appID, err := uuid.Parse(sub.ID)
	if err != nil {
		return submitRows{}, fmt.Errorf("submission id: %w", err)
	}
	eventID, err := uuid.Parse(sub.EventID)
	if err != nil {
		return submitRows{}, fmt.Errorf("submission event id: %w", err)
	}
	payload, err := json.Marshal(submittedPayload{ApplicationID: appID, PostingSlug: sub.PostingSlug})
	if err != nil {
		return submitRows{}, err
	}
	answers, err := encodeAnswers(sub.Applicant.Answers)
	if err != nil {
		return submitRows{}, err
	}
	return submitRows{appID: appID, eventID: eventID, payload: payload, answers: answers}, nil
}

// insertSubmission stores the submit in one statement (SubmissionInsert)
// and reports whether it did. When it did not, the statement wrote
// nothing: a key or an email committed by a concurrent request while it
// waited undoes it with an error, which here is just "not stored", like
// its 0 rows.
func insertSubmission(ctx context.Context, q *dbsqlc.Queries, sub application.Submission, rows submitRows) (bool, error) {
	a := sub.Applicant
	n, err := q.SubmissionInsert(ctx, dbsqlc.SubmissionInsertParams{
		PostingSlug:     sub.PostingSlug,
		Key:             sub.IdempotencyKey,
		Fingerprint:     sub.Fingerprint,
		ExpiresAt:       sub.KeyExpiresAt,
		ID:              rows.appID,
		ResponseStatus:  int16(sub.ResponseStatus),
		ResponseBody:    sub.ResponseBody,
		EmailNormalized: sub.EmailNormalized,
		FullName:        a.FullName,
		Email:           a.Email,
		Phone:           optionalText(a.Phone),
		CoverLetter:     optionalText(a.CoverLetter),
		Links:           nonNil(a.Links),
		ReceivedAt:      sub.ReceivedAt,
		Answers:         rows.answers,
		EventID:         rows.eventID,
		Kind:            application.EventSubmitted,
		Payload:         rows.payload,
	})
	switch {
	case lockTimeout(err):
		// The key is inserted first, so this is nearly always another
		// request holding it, answered as the transaction's claim answers
		// it. Running the transaction instead would wait a second
		// lock_timeout, past INTAKE_IDEMPOTENCY_WAIT's promise. (When it was
		// the email, held as long by a request under another key, the
		// transaction would say 503 unavailable: both mean "retry soon".)
		return false, application.ErrIdempotencyKeyInFlight
	case undoneByConcurrentCommit(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return n == 1, nil
}

// submitTx is the submit as one transaction, for a submit with a CV and
// for any that SubmissionInsert did not store.
func submitTx(ctx context.Context, q *dbsqlc.Queries, sub application.Submission, rows submitRows) (application.SubmitResult, error) {
	_, err := q.IdempotencyKeyClaim(ctx, dbsqlc.IdempotencyKeyClaimParams{
		Key:         sub.IdempotencyKey,
		Fingerprint: sub.Fingerprint,
		ExpiresAt:   sub.KeyExpiresAt,
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Committed by an earlier request (possibly one we just waited for).
		return replay(ctx, q, sub)
	case lockTimeout(err):
		return application.SubmitResult{}, application.ErrIdempotencyKeyInFlight
	case err != nil:
		return application.SubmitResult{}, err
	}

	a := sub.Applicant
	_, err = q.ApplicationInsert(ctx, dbsqlc.ApplicationInsertParams{
		ID:              rows.appID,
		PostingSlug:     sub.PostingSlug,
		FullName:        a.FullName,
		Email:           a.Email,
		EmailNormalized: sub.EmailNormalized,
		Phone:           optionalText(a.Phone),
		CoverLetter:     optionalText(a.CoverLetter),
		Links:           nonNil(a.Links),
		ReceivedAt:      sub.ReceivedAt,
		Answers:         rows.answers,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return application.SubmitResult{}, whyNotInserted(ctx, q, sub.PostingSlug)
	}
	if err != nil {
		return application.SubmitResult{}, err
	}

	if f := sub.CV; f != nil {
		if err := q.ApplicationFileInsert(ctx, dbsqlc.ApplicationFileInsertParams{
			ApplicationID: rows.appID,
			Filename:      f.Filename,
			ContentType:   f.ContentType,
			Size:          int64(len(f.Content)),
			Sha256:        f.SHA256[:],
			Content:       f.Content,
		}); err != nil {
			return application.SubmitResult{}, err
		}
	}

	if err := q.OutboxEventInsert(ctx, dbsqlc.OutboxEventInsertParams{
		ID:          rows.eventID,
		Kind:        application.EventSubmitted,
		AggregateID: rows.appID,
		Payload:     rows.payload,
	}); err != nil {
		return application.SubmitResult{}, err
	}

	n, err := q.IdempotencyKeyComplete(ctx, dbsqlc.IdempotencyKeyCompleteParams{
		Key:            sub.IdempotencyKey,
		ApplicationID:  rows.appID,
		ResponseStatus: int16(sub.ResponseStatus),
		ResponseBody:   sub.ResponseBody,
	})
	if err != nil {
		return application.SubmitResult{}, err
	}
	if n != 1 {
		return application.SubmitResult{}, fmt.Errorf("complete idempotency key: %d rows updated, want 1", n)
	}
	return application.SubmitResult{Status: sub.ResponseStatus, Body: sub.ResponseBody}, nil
}

// replay returns the response stored under an already committed key.
func replay(ctx context.Context, q *dbsqlc.Queries, sub application.Submission) (application.SubmitResult, error) {
	stored, err := q.IdempotencyKeyGet(ctx, sub.IdempotencyKey)
	if errors.Is(err, pgx.ErrNoRows) {
		// Expired and deleted between our claim and this read: rare enough
		// that asking the client to retry is the honest answer.
		return application.SubmitResult{}, application.ErrIdempotencyKeyInFlight
	}
	if err != nil {
		return application.SubmitResult{}, err
	}
	if !bytes.Equal(stored.Fingerprint, sub.Fingerprint) {
		return application.SubmitResult{}, application.ErrIdempotencyKeyReused
	}
	if stored.State != "completed" || !stored.ResponseStatus.Valid {
		return application.SubmitResult{}, application.ErrIdempotencyKeyInFlight
	}
	return application.SubmitResult{
		Status:   int(stored.ResponseStatus.Int16),
		Body:     stored.ResponseBody,
		Replayed: true,
	}, nil
}

// whyNotInserted tells apart the three reasons ApplicationInsert inserts
// nothing. It runs only on that unhappy path, so the happy path stays one
// statement.
func whyNotInserted(ctx context.Context, q *dbsqlc.Queries, slug string) error {
	p, err := q.PostingGetBySlug(ctx, slug)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return application.ErrNotFound
	case err != nil:
		return err
	case p.Status != string(application.PostingOpen):
		return application.ErrPostingClosed
	default:
		return application.ErrDuplicateApplication
	}
}

func optionalText(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeAnswers is answers as applications.answers holds them: a JSON
// object, {} when there are none.
func encodeAnswers(a application.Answers) ([]byte, error) {
	if len(a) == 0 {
		return []byte("{}"), nil
	}
	return json.Marshal(a)
}

// decodeAnswers reads applications.answers; nil when it holds none.
func decodeAnswers(raw []byte) (application.Answers, error) {
	var a application.Answers
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("application answers: %w", err)
	}
	if len(a) == 0 {
		return nil, nil
	}
	return a, nil
}

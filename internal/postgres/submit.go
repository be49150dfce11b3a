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

// Submit stores an application exactly once. In ONE transaction it claims
// the idempotency key, inserts the application, its CV if any, and its
// application.submitted event, and stores the response under the key; then it commits. Either all
// of it is committed or none of it is.
//
// When the key was already used, nothing is inserted: the stored response is
// returned with Replayed set, or ErrIdempotencyKeyReused when the request
// differs. When another transaction holds the key, Submit waits for it (up
// to the pool's lock_timeout) and then replays its response, or returns
// ErrIdempotencyKeyInFlight.
func (s *Store) Submit(ctx context.Context, sub application.Submission) (application.SubmitResult, error) {
	appID, err := uuid.Parse(sub.ID)
	if err != nil {
		return application.SubmitResult{}, fmt.Errorf("submission id: %w", err)
	}
	eventID, err := uuid.Parse(sub.EventID)
	if err != nil {
		return application.SubmitResult{}, fmt.Errorf("submission event id: %w", err)
	}
	payload, err := json.Marshal(submittedPayload{ApplicationID: appID, PostingSlug: sub.PostingSlug})
	if err != nil {
		return application.SubmitResult{}, err
	}
	answers, err := encodeAnswers(sub.Applicant.Answers)
	if err != nil {
		return application.SubmitResult{}, err
	}

	var res application.SubmitResult
	err = s.withTx(ctx, func(q *dbsqlc.Queries) error {
		_, err := q.IdempotencyKeyClaim(ctx, dbsqlc.IdempotencyKeyClaimParams{
			Key:         sub.IdempotencyKey,
			Fingerprint: sub.Fingerprint,
			ExpiresAt:   sub.KeyExpiresAt,
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Committed by an earlier request (possibly one we just waited for).
			res, err = replay(ctx, q, sub)
			return err
		case lockTimeout(err):
			return application.ErrIdempotencyKeyInFlight
		case err != nil:
			return err
		}

		a := sub.Applicant
		_, err = q.ApplicationInsert(ctx, dbsqlc.ApplicationInsertParams{
			ID:              appID,
			PostingSlug:     sub.PostingSlug,
			FullName:        a.FullName,
			Email:           a.Email,
			EmailNormalized: sub.EmailNormalized,
			Phone:           optionalText(a.Phone),
			CoverLetter:     optionalText(a.CoverLetter),
			Links:           nonNil(a.Links),
			ReceivedAt:      sub.ReceivedAt,
			Answers:         answers,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return whyNotInserted(ctx, q, sub.PostingSlug)
		}
		if err != nil {
			return err
		}

		if f := sub.CV; f != nil {
			if err := q.ApplicationFileInsert(ctx, dbsqlc.ApplicationFileInsertParams{
				ApplicationID: appID,
				Filename:      f.Filename,
				ContentType:   f.ContentType,
				Size:          int64(len(f.Content)),
				Sha256:        f.SHA256[:],
				Content:       f.Content,
			}); err != nil {
				return err
			}
		}

		if err := q.OutboxEventInsert(ctx, dbsqlc.OutboxEventInsertParams{
			ID:          eventID,
			Kind:        application.EventSubmitted,
			AggregateID: appID,
			Payload:     payload,
		}); err != nil {
			return err
		}

		n, err := q.IdempotencyKeyComplete(ctx, dbsqlc.IdempotencyKeyCompleteParams{
			Key:            sub.IdempotencyKey,
			ApplicationID:  appID,
			ResponseStatus: int16(sub.ResponseStatus),
			ResponseBody:   sub.ResponseBody,
		})
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("complete idempotency key: %d rows updated, want 1", n)
		}
		res = application.SubmitResult{Status: sub.ResponseStatus, Body: sub.ResponseBody}
		return nil
	})
	if err != nil {
		return application.SubmitResult{}, err
	}
	return res, nil
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

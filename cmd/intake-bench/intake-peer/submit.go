package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// peer serves the no-outbox submit.
type peer struct {
	cfg   config.Config
	pool  *pgxpool.Pool
	store *postgres.Store // for the posting's questions, cached per process as the API caches them
	river *river.Client[pgx.Tx]
	// maxAttempts is what the relay gives every job (job.RetrySchedule).
	maxAttempts int
	now         func() time.Time
}

// submitRequest is the API's body (httpapi's submitRequest).
type submitRequest struct {
	FullName    string              `json:"full_name"`
	Email       string              `json:"email"`
	Phone       string              `json:"phone,omitempty"`
	CoverLetter string              `json:"cover_letter,omitempty"`
	Links       []string            `json:"links,omitempty"`
	Answers     application.Answers `json:"answers,omitempty"`
}

// receipt is what is stored under the key and, with the status URL, the
// 201 body: the API's, field for field.
type receipt struct {
	ID         string    `json:"id"`
	Job        string    `json:"job"`
	ReceivedAt time.Time `json:"received_at"`
}

type response struct {
	receipt
	StatusURL string `json:"status_url"`
}

// Why a submit stored nothing. The harness sends every application with a
// key and an email of its own, so it never meets these; the peer answers
// them without the API's replays and explanations.
var (
	errKeyUsed     = errors.New("idempotency key already used")
	errNotInserted = errors.New("posting unknown or closed, or a duplicate application")
)

// handleSubmit is the API's submit with the same validation
// (internal/application) and the same answer, over the no-outbox
// transaction.
func (p *peer) handleSubmit(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if !application.ValidIdempotencyKey(key) {
		problem(w, http.StatusBadRequest, "idempotency-key-invalid")
		return
	}
	var req submitRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "bad-request")
		return
	}
	slug := r.PathValue("slug")
	ctx := r.Context()
	questions, err := p.store.PostingQuestions(ctx, slug)
	if errors.Is(err, application.ErrNotFound) {
		problem(w, http.StatusNotFound, "not-found")
		return
	}
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "unavailable")
		return
	}
	a := application.Applicant{
		FullName:    req.FullName,
		Email:       req.Email,
		Phone:       req.Phone,
		CoverLetter: req.CoverLetter,
		Links:       req.Links,
		Answers:     req.Answers,
	}
	if err := a.ValidateFor(questions); err != nil {
		problem(w, http.StatusUnprocessableEntity, "validation")
		return
	}
	sub, err := p.newSubmission(slug, key, a)
	if err != nil {
		problem(w, http.StatusInternalServerError, "internal")
		return
	}
	err = p.submit(ctx, sub)
	switch {
	case errors.Is(err, errKeyUsed), errors.Is(err, errNotInserted):
		problem(w, http.StatusConflict, "conflict")
		return
	case err != nil:
		problem(w, http.StatusServiceUnavailable, "unavailable")
		return
	}

	link := p.statusURL(sub.ID)
	body, err := json.Marshal(response{receipt: receipt{ID: sub.ID, Job: slug, ReceivedAt: sub.ReceivedAt}, StatusURL: link})
	if err != nil {
		problem(w, http.StatusInternalServerError, "internal")
		return
	}
	w.Header().Set("Location", link)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

// newSubmission prepares what the API's newSubmission prepares: the ids,
// the fingerprint, the receipt stored under the key.
func (p *peer) newSubmission(slug, key string, a application.Applicant) (application.Submission, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return application.Submission{}, err
	}
	eventID, err := uuid.NewV7()
	if err != nil {
		return application.Submission{}, err
	}
	now := p.now()
	receivedAt := now.UTC().Truncate(time.Microsecond)
	body, err := json.Marshal(receipt{ID: id.String(), Job: slug, ReceivedAt: receivedAt})
	if err != nil {
		return application.Submission{}, err
	}
	return application.Submission{
		ID:              id.String(),
		EventID:         eventID.String(),
		PostingSlug:     slug,
		Applicant:       a,
		EmailNormalized: application.NormalizeEmail(a.Email),
		ReceivedAt:      receivedAt,
		IdempotencyKey:  key,
		Fingerprint:     fingerprint(slug, a),
		KeyExpiresAt:    now.Add(p.cfg.IdempotencyTTL),
		ResponseStatus:  http.StatusCreated,
		ResponseBody:    body,
	}, nil
}

// submit is postgres.Store.Submit's transaction on its happy path with the
// outbox event replaced by the jobs the relay would have inserted for it:
// BEGIN, IdempotencyKeyClaim, ApplicationInsert, InsertManyTx (the jobs and
// River's insert notification), AnalyticsEventRecord (what Intake's relay
// writes in its round with the Postgres sink, the harness's),
// IdempotencyKeyComplete, COMMIT.
func (p *peer) submit(ctx context.Context, sub application.Submission) error {
	appID, err := uuid.Parse(sub.ID)
	if err != nil {
		return err
	}
	eventID, err := uuid.Parse(sub.EventID)
	if err != nil {
		return err
	}
	answers := []byte("{}")
	if len(sub.Applicant.Answers) > 0 {
		if answers, err = json.Marshal(sub.Applicant.Answers); err != nil {
			return err
		}
	}
	ev := application.Event{
		ID:            sub.EventID,
		Kind:          application.EventSubmitted,
		ApplicationID: sub.ID,
		PostingSlug:   sub.PostingSlug,
		OccurredAt:    sub.ReceivedAt,
	}
	jobs := job.ForEventWithoutAnalytics(ev, p.maxAttempts)

	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		q := dbsqlc.New(tx)
		_, err := q.IdempotencyKeyClaim(ctx, dbsqlc.IdempotencyKeyClaimParams{
			Key:         sub.IdempotencyKey,
			Fingerprint: sub.Fingerprint,
			ExpiresAt:   sub.KeyExpiresAt,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return errKeyUsed
		}
		if err != nil {
			return err
		}
		a := sub.Applicant
		_, err = q.ApplicationInsert(ctx, dbsqlc.ApplicationInsertParams{
			ID:              appID,
			PostingSlug:     sub.PostingSlug,
			FullName:        a.FullName,
			Email:           a.Email,
			EmailNormalized: sub.EmailNormalized,
			Phone:           pgtype.Text{String: a.Phone, Valid: a.Phone != ""},
			CoverLetter:     pgtype.Text{String: a.CoverLetter, Valid: a.CoverLetter != ""},
			Links:           append([]string{}, a.Links...),
			ReceivedAt:      sub.ReceivedAt,
			Answers:         answers,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotInserted
		}
		if err != nil {
			return err
		}
		if _, err := p.river.InsertManyTx(ctx, tx, jobs); err != nil {
			return fmt.Errorf("insert jobs: %w", err)
		}
		if _, err := q.AnalyticsEventRecord(ctx, dbsqlc.AnalyticsEventRecordParams{
			EventID:       eventID,
			Kind:          ev.Kind,
			ApplicationID: appID,
			PostingSlug:   ev.PostingSlug,
			OccurredAt:    ev.OccurredAt,
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
		return nil
	})
}

// fingerprint is the API's request fingerprint (httpapi's fingerprint) for
// a request without a CV: the same canonical JSON, hashed the same way.
func fingerprint(slug string, a application.Applicant) []byte {
	if len(a.Links) == 0 {
		a.Links = nil
	}
	canonical, _ := json.Marshal(struct {
		Route     string
		Slug      string
		Applicant application.Applicant
	}{"POST /api/v1/jobs/{slug}/applications", slug, a})
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// statusURL is the API's status_url: the JSON status endpoint with the
// application's token.
func (p *peer) statusURL(id string) string {
	u := *p.cfg.PublicURL
	u.Path = p.cfg.PublicURL.Path + "/api/v1/applications/" + id + "/status"
	u.RawQuery = url.Values{"token": {p.cfg.StatusTokens.Derive(id)}}.Encode()
	return u.String()
}

// problem answers an error as the API does (RFC 9457), without detail.
func problem(w http.ResponseWriter, status int, slug string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"type":%q,"title":%q,"status":%d}`, slug, http.StatusText(status), status)
}

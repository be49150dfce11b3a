package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
)

// submitRequest is the body of POST /api/v1/jobs/{slug}/applications.
type submitRequest struct {
	FullName    string   `json:"full_name"`
	Email       string   `json:"email"`
	Phone       string   `json:"phone,omitempty"`
	CoverLetter string   `json:"cover_letter,omitempty"`
	Links       []string `json:"links,omitempty"`
	// Answers by question key; checked against the posting's questions.
	Answers application.Answers `json:"answers,omitempty"`
}

// submitReceipt is what is stored under the idempotency key: the 201 body
// without status_url, whose token must be kept nowhere.
type submitReceipt struct {
	ID         string    `json:"id"`
	Job        string    `json:"job"`
	ReceivedAt time.Time `json:"received_at"`
}

// submitResponse is the 201 body: the stored receipt and the status URL,
// derived again from the id for every answer, so a replay is byte for byte
// the original (as long as INTAKE_PUBLIC_URL and INTAKE_STATUS_SECRET stay
// the same).
type submitResponse struct {
	submitReceipt
	StatusURL string `json:"status_url"`
}

// handleSubmit takes an application through the JSON API.
func handleSubmit(store *postgres.Store, waker *postgres.Waker, now func() time.Time, cfg config.Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get("Idempotency-Key")
		if !application.ValidIdempotencyKey(key) {
			return errIdempotencyKeyInvalid
		}
		var req submitRequest
		cv, err := decodeSubmit(c, cfg, &req)
		if err != nil {
			return err
		}
		applicant := application.Applicant{
			FullName:    req.FullName,
			Email:       req.Email,
			Phone:       req.Phone,
			CoverLetter: req.CoverLetter,
			Links:       req.Links,
			Answers:     req.Answers,
		}
		// One indexed read before the transaction: the answers are checked
		// against the posting's questions before anything is written.
		ctx := c.Request().Context()
		var res application.SubmitResult
		questions, err := store.PostingQuestions(ctx, c.Param("slug"))
		if err == nil {
			res, err = submitApplication(ctx, store, waker, now(), cfg, c.Param("slug"), questions, key, applicant, cv)
		}
		setSubmitOutcome(c, res, err)
		if err != nil {
			return err
		}
		return writeSubmitResult(c, res, cfg)
	}
}

// submitApplication is the one code path behind both the JSON API and the
// web form: validate (the CV, if one was sent, too), then one transaction
// (postgres.Store.Submit), then wake the relay.
func submitApplication(ctx context.Context, store *postgres.Store, waker *postgres.Waker, now time.Time, cfg config.Config,
	slug string, questions []application.Question, key string, applicant application.Applicant, cv *upload,
) (application.SubmitResult, error) {
	file, err := validateSubmission(&applicant, questions, cv)
	if err != nil {
		return application.SubmitResult{}, err
	}
	sub, err := newSubmission(slug, key, applicant, file, now, cfg)
	if err != nil {
		return application.SubmitResult{}, err
	}
	res, err := store.Submit(ctx, sub)
	if err != nil {
		return application.SubmitResult{}, err
	}
	if !res.Replayed {
		waker.Wake()
	}
	return res, nil
}

// newSubmission prepares everything the submit transaction stores: the ids,
// the request fingerprint and the receipt to store under the key.
func newSubmission(slug, key string, a application.Applicant, cv *application.File, now time.Time, cfg config.Config) (application.Submission, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return application.Submission{}, err
	}
	eventID, err := uuid.NewV7()
	if err != nil {
		return application.Submission{}, err
	}
	// Postgres keeps microseconds; the stored receipt must say exactly what
	// the database holds.
	receivedAt := now.UTC().Truncate(time.Microsecond)
	body, err := json.Marshal(submitReceipt{
		ID:         id.String(),
		Job:        slug,
		ReceivedAt: receivedAt,
	})
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
		CV:              cv,
		IdempotencyKey:  key,
		Fingerprint:     fingerprint(slug, a, cvSum(cv)),
		KeyExpiresAt:    now.Add(cfg.IdempotencyTTL),
		ResponseStatus:  http.StatusCreated,
		ResponseBody:    body,
	}, nil
}

// fingerprint identifies a request for idempotency: the same key with a
// different fingerprint is a reused key. It covers the posting, the
// normalised fields and the CV's SHA-256, so whitespace around a value does
// not make a request different, but any real change (another file
// included) does. A request without a CV hashes as it did before CVs were
// taken, so keys stored then still replay.
func fingerprint(slug string, a application.Applicant, cv []byte) []byte {
	if len(a.Links) == 0 {
		a.Links = nil // absent and empty are the same request
	}
	canonical, _ := json.Marshal(struct {
		Route     string
		Slug      string
		Applicant application.Applicant
		CV        []byte `json:",omitempty"`
	}{"POST /api/v1/jobs/{slug}/applications", slug, a, cv})
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// statusURL is the JSON status endpoint's address for an application,
// token included.
func statusURL(base *url.URL, keys statustoken.Keys, id string) string {
	u := *base
	u.Path = base.Path + "/api/v1/applications/" + id + "/status"
	u.RawQuery = url.Values{"token": {keys.Derive(id)}}.Encode()
	return u.String()
}

// parseReceipt reads a stored receipt. Receipts stored before status URLs
// were derived held a status_url too; decoding ignores it.
func parseReceipt(body []byte) (submitReceipt, error) {
	var r submitReceipt
	err := json.Unmarshal(body, &r)
	return r, err
}

// writeSubmitResult sends the stored receipt with its status URL: the same
// status, Location and body whether it was just created or replayed.
func writeSubmitResult(c echo.Context, res application.SubmitResult, cfg config.Config) error {
	r, err := parseReceipt(res.Body)
	if err != nil {
		return err
	}
	link := statusURL(cfg.PublicURL, cfg.StatusTokens, r.ID)
	body, err := json.Marshal(submitResponse{submitReceipt: r, StatusURL: link})
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, link)
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.Blob(res.Status, echo.MIMEApplicationJSON, body)
}

package httpapi

import (
	"context"
	"crypto/rand"
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
)

// submitRequest is the body of POST /api/v1/jobs/{slug}/applications.
type submitRequest struct {
	FullName    string   `json:"full_name"`
	Email       string   `json:"email"`
	Phone       string   `json:"phone,omitempty"`
	CoverLetter string   `json:"cover_letter,omitempty"`
	Links       []string `json:"links,omitempty"`
}

// submitResponse is the 201 body, stored under the idempotency key and
// replayed byte for byte.
type submitResponse struct {
	ID         string    `json:"id"`
	Job        string    `json:"job"`
	ReceivedAt time.Time `json:"received_at"`
	StatusURL  string    `json:"status_url"`
}

// handleSubmit takes an application through the JSON API.
func handleSubmit(store *postgres.Store, waker *postgres.Waker, now func() time.Time, cfg config.Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get("Idempotency-Key")
		if !application.ValidIdempotencyKey(key) {
			return errIdempotencyKeyInvalid
		}
		var req submitRequest
		if err := decodeJSON(c, cfg.MaxBodyBytes, &req); err != nil {
			return err
		}
		applicant := application.Applicant{
			FullName:    req.FullName,
			Email:       req.Email,
			Phone:       req.Phone,
			CoverLetter: req.CoverLetter,
			Links:       req.Links,
		}
		res, err := submitApplication(c.Request().Context(), store, waker, now(), cfg, c.Param("slug"), key, applicant)
		if err != nil {
			return err
		}
		return writeSubmitResult(c, res)
	}
}

// submitApplication is the one code path behind both the JSON API and the
// web form: validate, then one transaction (postgres.Store.Submit), then
// wake the relay.
func submitApplication(ctx context.Context, store *postgres.Store, waker *postgres.Waker, now time.Time, cfg config.Config,
	slug, key string, applicant application.Applicant,
) (application.SubmitResult, error) {
	if err := applicant.Validate(); err != nil {
		return application.SubmitResult{}, err
	}
	sub, err := newSubmission(slug, key, applicant, now, cfg)
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
// the status token (only its hash is stored with the application), the
// request fingerprint and the response to store under the key.
func newSubmission(slug, key string, a application.Applicant, now time.Time, cfg config.Config) (application.Submission, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return application.Submission{}, err
	}
	eventID, err := uuid.NewV7()
	if err != nil {
		return application.Submission{}, err
	}
	// 26 base32 characters, 130 random bits: unguessable, and URL-safe.
	token := rand.Text()

	// Postgres keeps microseconds; the stored response must say exactly what
	// the database holds.
	receivedAt := now.UTC().Truncate(time.Microsecond)
	body, err := json.Marshal(submitResponse{
		ID:         id.String(),
		Job:        slug,
		ReceivedAt: receivedAt,
		StatusURL:  statusURL(cfg.PublicURL, id.String(), token),
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
		StatusTokenHash: hashToken(token),
		IdempotencyKey:  key,
		Fingerprint:     fingerprint(slug, a),
		KeyExpiresAt:    now.Add(cfg.IdempotencyTTL),
		ResponseStatus:  http.StatusCreated,
		ResponseBody:    body,
	}, nil
}

// fingerprint identifies a request for idempotency: the same key with a
// different fingerprint is a reused key. It covers the posting and the
// normalised fields, so whitespace around a value does not make a request
// different, but any real change does.
func fingerprint(slug string, a application.Applicant) []byte {
	if len(a.Links) == 0 {
		a.Links = nil // absent and empty are the same request
	}
	canonical, _ := json.Marshal(struct {
		Route     string
		Slug      string
		Applicant application.Applicant
	}{"POST /api/v1/jobs/{slug}/applications", slug, a})
	sum := sha256.Sum256(canonical)
	return sum[:]
}

func statusURL(base *url.URL, id, token string) string {
	u := *base
	u.Path = base.Path + "/api/v1/applications/" + id + "/status"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String()
}

// parseReceipt reads the application id and status token back from a
// stored 201 body; the web form redirects with them.
func parseReceipt(body []byte) (id, token string, err error) {
	var r submitResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return "", "", err
	}
	u, err := url.Parse(r.StatusURL)
	if err != nil {
		return "", "", err
	}
	return r.ID, u.Query().Get("token"), nil
}

// writeSubmitResult sends the stored response: the same status and body
// whether it was just created or replayed.
func writeSubmitResult(c echo.Context, res application.SubmitResult) error {
	var body submitResponse
	if err := json.Unmarshal(res.Body, &body); err == nil && body.StatusURL != "" {
		c.Response().Header().Set(echo.HeaderLocation, body.StatusURL)
	}
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.Blob(res.Status, echo.MIMEApplicationJSON, res.Body)
}

// hashToken is how a status token is compared: only its SHA-256 is stored.
func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

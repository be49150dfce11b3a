package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// problem is an RFC 9457 problem details body. Type is a stable slug that
// clients may switch on; Title is its human name.
type problem struct {
	Type   string                   `json:"type"`
	Title  string                   `json:"title"`
	Status int                      `json:"status"`
	Detail string                   `json:"detail,omitempty"`
	Errors []application.FieldError `json:"errors,omitempty"`

	retryAfter int // seconds; sent as the Retry-After header when set
	// bearer sends WWW-Authenticate: Bearer (RFC 6750) with a 401.
	bearer bool
}

// HTTP-only errors: what can go wrong before a request reaches the domain.
var (
	errIdempotencyKeyInvalid = errors.New("Idempotency-Key must be 1 to 255 printable ASCII characters")
	errUnsupportedMediaType  = errors.New("Content-Type must be application/json")
	errBodyTooLarge          = errors.New("request body too large")
)

// badRequestError is malformed input: not JSON, not an object, unknown or
// mistyped fields, trailing data.
type badRequestError struct {
	detail string
	field  string
}

func (e *badRequestError) Error() string { return e.detail }

// queryParamError is a query parameter that is malformed or out of range.
type queryParamError struct {
	field  string
	detail string
}

func (e *queryParamError) Error() string { return e.field + " " + e.detail }

// rateLimitedError carries how long the client should wait.
type rateLimitedError struct{ retryAfter int }

func (e *rateLimitedError) Error() string { return "rate limit exceeded" }

// Retry-After for a database outage: long enough not to hammer a restarting
// server, short enough that a client comes back soon after.
const unavailableRetryAfter = 2

// Retry-After for a shed request: an overload passes or it does not, and a
// second is long against the milliseconds a submit takes.
const overloadedRetryAfter = 1

// problemFor is the one place where errors become HTTP statuses. Only what it
// cannot place (a 500) is logged as an error by errorHandler.
func problemFor(err error) problem {
	var (
		verr   *application.ValidationError
		badReq *badRequestError
		qp     *queryParamError
		rl     *rateLimitedError
		he     *echo.HTTPError
	)
	var cvTooLarge *cvTooLargeError
	switch {
	// The CV's refusals come before the fields' validation errors that
	// validateSubmission joins to them.
	case errors.As(err, &cvTooLarge):
		return problem{Type: "body-too-large", Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
			Detail: "The CV is larger than " + sizeText(cvTooLarge.limit) + "; nothing was stored.",
			Errors: []application.FieldError{{Field: "cv", Message: "must be at most " + sizeText(cvTooLarge.limit)}}}
	case errors.Is(err, errCVUnsupported):
		return problem{Type: "unsupported-cv-type", Title: "Unsupported CV type", Status: http.StatusUnsupportedMediaType,
			Detail: "Send the CV as a PDF, DOCX, ODT or plain text (UTF-8) file; nothing was stored.",
			Errors: []application.FieldError{{Field: "cv", Message: "must be a PDF, DOCX, ODT or plain text file"}}}
	case errors.As(err, &verr):
		return problem{Type: "validation", Title: "Invalid fields", Status: http.StatusUnprocessableEntity,
			Detail: "Some fields are invalid; see errors.", Errors: verr.Errors}
	case errors.As(err, &badReq):
		p := problem{Type: "invalid-json", Title: "Malformed request body", Status: http.StatusBadRequest, Detail: badReq.detail}
		if badReq.field != "" {
			p.Errors = []application.FieldError{{Field: badReq.field, Message: badReq.detail}}
		}
		return p
	case errors.As(err, &qp):
		return problem{Type: "invalid-parameter", Title: "Invalid query parameter", Status: http.StatusBadRequest,
			Detail: qp.Error(), Errors: []application.FieldError{{Field: qp.field, Message: qp.detail}}}
	case errors.Is(err, access.ErrTokenInvalid):
		// One answer for no token, a malformed, unknown, revoked or
		// expired one: nothing tells an attacker which it was.
		return problem{Type: "unauthorized", Title: "Authentication required", Status: http.StatusUnauthorized,
			Detail: "Send a valid admin token: Authorization: Bearer intk_...", bearer: true}
	case errors.Is(err, errForbidden):
		return problem{Type: "forbidden", Title: "Not allowed", Status: http.StatusForbidden,
			Detail: "This token's role does not allow this call."}
	case errors.Is(err, access.ErrRoleTooHigh):
		return problem{Type: "forbidden", Title: "Not allowed", Status: http.StatusForbidden,
			Detail: "A token cannot create a token with a higher role than its own."}
	case errors.Is(err, postgres.ErrSlugTaken):
		return problem{Type: "slug-taken", Title: "Slug in use", Status: http.StatusConflict,
			Detail: "Another posting has this slug."}
	case errors.Is(err, errIdempotencyKeyInvalid):
		return problem{Type: "idempotency-key-invalid", Title: "Missing or malformed Idempotency-Key", Status: http.StatusBadRequest,
			Detail: err.Error()}
	case errors.Is(err, errUnsupportedMediaType):
		return problem{Type: "unsupported-media-type", Title: "Unsupported media type", Status: http.StatusUnsupportedMediaType,
			Detail: err.Error()}
	case errors.Is(err, errCSRF):
		return problem{Type: "csrf-refused", Title: "Form refused", Status: http.StatusForbidden,
			Detail: "The form did not come from this site's page, or has expired; reload the page and send it again."}
	case errors.Is(err, errBodyTooLarge):
		return problem{Type: "body-too-large", Title: "Request body too large", Status: http.StatusRequestEntityTooLarge}
	case errors.As(err, &rl):
		return problem{Type: "rate-limited", Title: "Too many requests", Status: http.StatusTooManyRequests,
			Detail: "Slow down and retry after the number of seconds in Retry-After.", retryAfter: rl.retryAfter}
	case errors.Is(err, application.ErrNotFound):
		return problem{Type: "not-found", Title: "Not found", Status: http.StatusNotFound}
	case errors.Is(err, application.ErrErased):
		return problem{Type: "erased", Title: "Application deleted", Status: http.StatusGone,
			Detail: "This application's personal data was deleted at the applicant's request."}
	case errors.Is(err, application.ErrPostingClosed):
		return problem{Type: "posting-closed", Title: "Posting closed", Status: http.StatusConflict,
			Detail: "This posting no longer accepts applications."}
	case errors.Is(err, application.ErrDuplicateApplication):
		// Says nothing about the existing application: not its id, not when.
		return problem{Type: "duplicate-application", Title: "Already applied", Status: http.StatusConflict,
			Detail: "An application with this email address has already been received for this posting."}
	case errors.Is(err, application.ErrIdempotencyKeyReused):
		return problem{Type: "idempotency-key-reused", Title: "Idempotency-Key reused", Status: http.StatusUnprocessableEntity,
			Detail: "This Idempotency-Key was used for a different request; use a new key for a new request."}
	case errors.Is(err, application.ErrIdempotencyKeyInFlight):
		return problem{Type: "idempotency-key-in-flight", Title: "Request in progress", Status: http.StatusConflict,
			Detail: "A request with this Idempotency-Key is still being processed; retry after Retry-After seconds.", retryAfter: 1}
	case errors.Is(err, errOverloaded), errors.Is(err, postgres.ErrBusy):
		return problem{Type: "overloaded", Title: "Overloaded", Status: http.StatusServiceUnavailable,
			Detail:     "Too many requests are being worked on; nothing was stored. Retry with the same Idempotency-Key after Retry-After seconds.",
			retryAfter: overloadedRetryAfter}
	case errors.Is(err, application.ErrUnavailable):
		return problem{Type: "unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "The database is unavailable; nothing was stored. Retry with the same Idempotency-Key.", retryAfter: unavailableRetryAfter}
	case errors.As(err, &he):
		return problemForStatus(he.Code)
	default:
		return problem{Type: "internal", Title: "Internal server error", Status: http.StatusInternalServerError}
	}
}

// problemForStatus covers the errors echo raises itself (unknown route,
// wrong method).
func problemForStatus(status int) problem {
	switch status {
	case http.StatusNotFound:
		return problem{Type: "not-found", Title: "Not found", Status: status}
	case http.StatusMethodNotAllowed:
		return problem{Type: "method-not-allowed", Title: "Method not allowed", Status: status}
	case http.StatusRequestEntityTooLarge:
		return problem{Type: "body-too-large", Title: "Request body too large", Status: status}
	default:
		if status >= 400 && status < 500 {
			return problem{Type: "bad-request", Title: http.StatusText(status), Status: status}
		}
		return problem{Type: "internal", Title: "Internal server error", Status: http.StatusInternalServerError}
	}
}

// errorHandler writes every error as problem+json. It logs 5xx only: a 4xx
// is the client's business, and logging its details could log personal data.
func errorHandler(logger *slog.Logger, employer application.Employer) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problemFor(err)
		switch {
		case p.Type == "overloaded":
			// Counted in intake_submits_total{outcome="overloaded"}; a line
			// per shed request would cost what shedding saves.
		case p.Status == http.StatusServiceUnavailable:
			logger.Warn("request failed: database unavailable", "request_id", requestIDOf(c), "err", err)
		case p.Status >= 500:
			logger.Error("request failed", "request_id", requestIDOf(c), "err", err)
		}
		if p.bearer {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="intake-admin"`)
		}
		if p.retryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
		}
		if !isAPIRequest(c) {
			if err := render(c, p.Status, "message", messageForStatus(p.Status, employer)); err != nil {
				logger.Error("render error page", "request_id", requestIDOf(c), "err", err)
			}
			return
		}
		writeProblem(c, p)
	}
}

func writeProblem(c echo.Context, p problem) {
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	_ = c.JSON(p.Status, p)
}

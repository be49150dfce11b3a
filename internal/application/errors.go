package application

import (
	"errors"
	"strings"
)

// Domain errors. Adapters map them to their own vocabulary in one place
// (internal/httpapi/errors.go for HTTP).
var (
	// ErrNotFound: no such posting or application, or a status token that
	// does not match (indistinguishable on purpose).
	ErrNotFound = errors.New("not found")
	// ErrPostingClosed: the posting exists but no longer takes applications.
	ErrPostingClosed = errors.New("posting closed")
	// ErrDuplicateApplication: this posting already has an application from
	// the same normalised email address.
	ErrDuplicateApplication = errors.New("duplicate application")
	// ErrIdempotencyKeyReused: the key was used before for a different request.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	// ErrIdempotencyKeyInFlight: another request holding the same key did not
	// finish within the wait budget.
	ErrIdempotencyKeyInFlight = errors.New("idempotency key in flight")
	// ErrUnavailable: the database could not be reached or did not answer in
	// time; nothing was stored and the request may be retried.
	ErrUnavailable = errors.New("database unavailable")
	// ErrErased: the application exists only as a skeleton; its personal
	// data was erased at the applicant's request.
	ErrErased = errors.New("application erased")
)

// FieldError names one invalid input field and says what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of one input.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	fields := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		fields[i] = fe.Field
	}
	return "invalid fields: " + strings.Join(fields, ", ")
}

// add records a problem with field; the first problem per field wins so
// messages stay specific.
func (e *ValidationError) add(field, message string) {
	for _, fe := range e.Errors {
		if fe.Field == field {
			return
		}
	}
	e.Errors = append(e.Errors, FieldError{Field: field, Message: message})
}

// err returns e when it holds at least one field error, nil otherwise.
func (e *ValidationError) err() error {
	if len(e.Errors) == 0 {
		return nil
	}
	return e
}

package application

import "time"

// EventSubmitted is the kind of the outbox event stored with every
// application.
const EventSubmitted = "application.submitted"

// Event is an outbox event as the relay and the analytics sinks see it: ids
// and times only, never personal data.
type Event struct {
	ID            string
	Kind          string
	ApplicationID string
	PostingSlug   string
	OccurredAt    time.Time
}

// Confirmation is what the confirmation email needs about an application.
type Confirmation struct {
	ApplicationID string
	FullName      string
	Email         string
	ReceivedAt    time.Time
	PostingSlug   string
	PostingTitle  string
	// StatusURL is the applicant's status page, token included. It is
	// derived, never stored, so the store leaves it empty and the worker
	// sets it, with Employer (configuration, not data).
	StatusURL string
	Employer  Employer
}

// Delivery failure classes recorded in the ledger (never the server's text,
// which can quote the address).
const (
	FailureTemporary = "temporary" // 4xx, refused connection, timeout, TLS: retried
	FailurePermanent = "permanent" // 5xx: not retried
	FailureExhausted = "exhausted" // temporary failures until the last attempt
	FailureAbandoned = "abandoned" // the job ended without recording an outcome (its worker died on the last attempt, it was cancelled or deleted)
	FailureErased    = "erased"    // the application was erased before its email went (state cancelled)
)

package application

import (
	"strings"
	"time"
)

// Summary is one line of the admin list of applications.
type Summary struct {
	ID          string    `json:"id"`
	PostingSlug string    `json:"job"`
	FullName    string    `json:"full_name"`
	Email       string    `json:"email"`
	ReceivedAt  time.Time `json:"received_at"`
}

// PageKey is where a page of applications, newest first, continues: after
// the application received at ReceivedAt with ID (ties on the time are
// broken by the id, so the order is total and stable under inserts).
type PageKey struct {
	ReceivedAt time.Time
	ID         string
}

// Record is everything an admin may read about one application: what the
// applicant sent, the confirmation email's ledger row and whether the
// analytics sink has recorded its event.
type Record struct {
	ID          string
	PostingSlug string
	Applicant   Applicant
	ReceivedAt  time.Time
	Email       EmailStatus
	// EmailSentAt, EmailErrorClass and EmailSMTPCode come from the ledger;
	// zero when it has none.
	EmailSentAt     *time.Time
	EmailErrorClass string
	EmailSMTPCode   int
	// AnalyticsRecordedAt is nil while the default (Postgres) sink has no
	// record of the application's event.
	AnalyticsRecordedAt *time.Time
	// ErasedAt is when the application's personal data was erased; its
	// Applicant then holds placeholders.
	ErasedAt *time.Time
	// CV describes the attached file; nil when none was sent or it was
	// erased.
	CV *FileInfo
}

// PostingPatch changes some of a posting's fields; nil leaves one as it is.
type PostingPatch struct {
	Title       *string
	Description *string
	Location    *string
	Team        *string
	Status      *PostingStatus
}

// Validate checks the patch by the rules NewPosting.Validate applies to the
// same fields, and that it changes something.
func (p *PostingPatch) Validate() error {
	var v ValidationError
	if p.Title == nil && p.Description == nil && p.Location == nil && p.Team == nil && p.Status == nil {
		v.add("title", "give at least one of title, description, location, team and status")
	}
	if p.Title != nil {
		t := strings.TrimSpace(*p.Title)
		p.Title = &t
		if msg := lineProblem(t, MaxTitleLen); msg != "" {
			v.add("title", msg)
		}
	}
	if p.Description != nil {
		d := strings.TrimSpace(*p.Description)
		p.Description = &d
		if msg := textProblem(d, MaxDescriptionLen); msg != "" {
			v.add("description", msg)
		}
	}
	if p.Location != nil {
		l := optionalLine(&v, "location", *p.Location, MaxLocationLen)
		p.Location = &l
	}
	if p.Team != nil {
		t := optionalLine(&v, "team", *p.Team, MaxTeamLen)
		p.Team = &t
	}
	if p.Status != nil && *p.Status != PostingOpen && *p.Status != PostingClosed {
		v.add("status", `must be "open" or "closed"`)
	}
	return v.err()
}

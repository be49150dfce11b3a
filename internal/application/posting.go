package application

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PostingStatus says whether a posting takes applications.
type PostingStatus string

const (
	PostingOpen   PostingStatus = "open"
	PostingClosed PostingStatus = "closed"
)

// Posting is a job opening. URLs call it a job because applicants do.
type Posting struct {
	ID          int64
	Slug        string
	Title       string
	Description string
	// Location and Team are shown beside the title; empty when not given.
	Location  string
	Team      string
	Status    PostingStatus
	CreatedAt time.Time
	// Questions are fixed at creation: answers stored for one wording must
	// not come to mean the answers to another.
	Questions []Question
}

// NewPosting is the input for creating a posting.
type NewPosting struct {
	Slug        string
	Title       string
	Description string
	Location    string // optional
	Team        string // optional
	Questions   []Question
}

var slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ValidSlug reports whether s can be a posting's slug; anything else names
// no posting, so it is answered 404 before any query.
func ValidSlug(s string) bool {
	return len(s) <= MaxSlugLen && slugPattern.MatchString(s)
}

// Limits shared with the database's CHECK constraints.
const (
	MaxSlugLen        = 100
	MaxTitleLen       = 200
	MaxDescriptionLen = 20000
	MaxLocationLen    = 200
	MaxTeamLen        = 200
)

// Validate checks p against the rules the database also enforces, so a bad
// posting is refused with a message instead of a constraint violation.
func (p *NewPosting) Validate() error {
	p.Slug = strings.TrimSpace(p.Slug)
	p.Title = strings.TrimSpace(p.Title)
	p.Description = strings.TrimSpace(p.Description)

	var v ValidationError
	switch {
	case p.Slug == "":
		v.add("slug", "is required")
	case len(p.Slug) > MaxSlugLen:
		v.add("slug", "must be at most 100 characters")
	case !slugPattern.MatchString(p.Slug):
		v.add("slug", "must be lower-case letters and digits separated by single dashes")
	}
	if msg := lineProblem(p.Title, MaxTitleLen); msg != "" {
		v.add("title", msg)
	}
	if msg := textProblem(p.Description, MaxDescriptionLen); msg != "" {
		v.add("description", msg)
	}
	p.Location = optionalLine(&v, "location", p.Location, MaxLocationLen)
	p.Team = optionalLine(&v, "team", p.Team, MaxTeamLen)
	validateQuestions(&v, p.Questions)
	return v.err()
}

// optionalLine trims s, an optional one-line field such as a posting's
// location, and checks it by a title's rules (lineProblem). An empty value
// is allowed (the field is left out where it would show).
func optionalLine(v *ValidationError, field, s string, max int) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if msg := lineProblem(s, max); msg != "" {
		v.add(field, msg)
	}
	return s
}

// textProblem says what is wrong with an optional multi-line text of at
// most max characters (a cover letter, a posting's description): it may be
// empty and span lines, but holds no control character (Postgres refuses a
// NUL byte outright) and no text-direction override. It returns "" when
// the text is fine.
func textProblem(s string, max int) string {
	switch {
	case utf8.RuneCountInString(s) > max:
		return "must be at most " + strconv.Itoa(max) + " characters"
	case !plainText(s, true):
		return "must not contain control characters"
	case hasDirectionOverride(s):
		return noDirectionOverride
	}
	return ""
}

// Employer is who the careers site and its emails speak for
// (INTAKE_ORG_NAME, INTAKE_ORG_LOGO_URL, INTAKE_ORG_CONTACT).
type Employer struct {
	Name    string
	LogoURL string // absolute http(s) URL, or empty
	Contact string // an email address applicants may write to, or empty
}

// Reference is an application's short reference for people: the last
// eight hex digits of its id (the random part of a UUIDv7), grouped, upper
// case ("5F6A-7B8C"). It is for reading out and quoting, not for lookups:
// two applications may share one.
func Reference(applicationID string) string {
	hex := strings.ToUpper(strings.ReplaceAll(applicationID, "-", ""))
	if len(hex) < 8 {
		return hex
	}
	tail := hex[len(hex)-8:]
	return tail[:4] + "-" + tail[4:]
}

package application

import (
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits shared with the database's CHECK constraints.
const (
	MaxFullNameLen    = 200
	MaxEmailLen       = 254
	MaxPhoneLen       = 40
	MaxCoverLetterLen = 10000
	MaxLinks          = 5
	MaxLinkLen        = 2048
)

// Applicant is what a person submits when applying: all of it is personal
// data, so none of it may reach logs, job args, events or metrics.
type Applicant struct {
	FullName    string
	Email       string
	Phone       string
	CoverLetter string
	Links       []string
	// Answers to the posting's questions; omitted from the idempotency
	// fingerprint when there are none, so requests without answers keep
	// the fingerprint they had before questions existed.
	Answers Answers `json:",omitempty"`
}

// Normalize trims surrounding whitespace from every field of a. Validate
// calls it first. Links get a new slice: the caller's array is not written
// to, so one slice may back several applicants.
func (a *Applicant) Normalize() {
	a.FullName = strings.TrimSpace(a.FullName)
	a.Email = strings.TrimSpace(a.Email)
	a.Phone = strings.TrimSpace(a.Phone)
	a.CoverLetter = strings.TrimSpace(a.CoverLetter)
	if a.Links != nil {
		links := make([]string, len(a.Links))
		for i, l := range a.Links {
			links[i] = strings.TrimSpace(l)
		}
		a.Links = links
	}
}

// Validate is ValidateFor a posting without questions: any answer is
// refused.
func (a *Applicant) Validate() error {
	return a.ValidateFor(nil)
}

// ValidateFor normalises a and reports every field that breaks a rule, its
// answers checked against the posting's questions. The rules mirror the
// database's constraints, plus what only code can check (email syntax, URL
// schemes, control characters, answers' kinds and choices).
func (a *Applicant) ValidateFor(questions []Question) error {
	a.Normalize()
	var v ValidationError

	if msg := lineProblem(a.FullName, MaxFullNameLen); msg != "" {
		v.add("full_name", msg)
	}

	if msg := emailProblem(a.Email); msg != "" {
		v.add("email", msg)
	}

	if a.Phone != "" {
		switch {
		case utf8.RuneCountInString(a.Phone) > MaxPhoneLen:
			v.add("phone", "must be at most "+strconv.Itoa(MaxPhoneLen)+" characters")
		case !phoneLike(a.Phone):
			v.add("phone", "must be digits, spaces and + ( ) - . / only, with at least 4 digits")
		}
	}

	if msg := textProblem(a.CoverLetter, MaxCoverLetterLen); msg != "" {
		v.add("cover_letter", msg)
	}

	if len(a.Links) > MaxLinks {
		v.add("links", "must list at most "+strconv.Itoa(MaxLinks)+" links")
	} else {
		for i, l := range a.Links {
			if msg := linkProblem(l); msg != "" {
				v.add("links["+strconv.Itoa(i)+"]", msg)
			}
		}
	}
	a.Answers = validateAnswers(&v, questions, a.Answers)
	return v.err()
}

// NormalizeEmail gives the form of an address that uniqueness is decided on:
// "  Ada@Example.COM " and "ada@example.com" are the same applicant.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

func emailProblem(email string) string {
	if email == "" {
		return "is required"
	}
	if len(email) > MaxEmailLen {
		return "must be at most " + strconv.Itoa(MaxEmailLen) + " bytes"
	}
	if !plainText(email, false) || hasInvisible(email) {
		return "must be an email address like name@example.com"
	}
	addr, err := mail.ParseAddress(email)
	// ParseAddress also accepts "Name <a@b>" and comments; only a bare
	// address that round-trips is an address we can store and mail.
	if err != nil || addr.Name != "" || addr.Address != email {
		return "must be an email address like name@example.com"
	}
	at := strings.LastIndexByte(email, '@')
	local, domain := email[:at], email[at+1:]
	if len(local) > 64 || !strings.Contains(domain, ".") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "must be an email address like name@example.com"
	}
	return ""
}

func linkProblem(link string) string {
	if link == "" {
		return "must not be empty"
	}
	if utf8.RuneCountInString(link) > MaxLinkLen {
		return "must be at most " + strconv.Itoa(MaxLinkLen) + " characters"
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !plainText(link, false) {
		return "must be an http or https URL"
	}
	if hasInvisible(link) {
		return noInvisible
	}
	// A password in a link would be stored, shown to recruiters and kept
	// in backups; a user name alone is how phishing links pose as others.
	if u.User != nil {
		return "must not contain a user name or password"
	}
	return ""
}

func phoneLike(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(" +()-./", r):
		default:
			return false
		}
	}
	return digits >= 4
}

// plainText reports whether s is valid UTF-8 without control characters
// (line breaks and tabs allowed when multiline). Postgres refuses NUL bytes
// and invalid UTF-8, and nobody means to send the rest.
func plainText(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

const noDirectionOverride = "must not contain text-direction override, embedding or isolate characters (U+202A to U+202E, U+2066 to U+2069)"

const noInvisible = "must not contain invisible, line-breaking or text-direction characters (zero-width space, bidi control, soft hyphen, line separator)"

// hasInvisible reports whether s holds a format character (Unicode Cf: the
// zero-width space, bidi marks, overrides, embeddings and isolates, the
// byte-order mark, the soft hyphen, word joiners, tags) or a line or
// paragraph separator: characters that show as nothing, reorder what is
// shown, or break a line that must stay one. Single-line fields refuse
// them all, but for the zero-width joiner and non-joiner between two
// letters of a script whose spelling needs them (a Persian "حسین‌زاده", a
// Sinhala "ශ්‍රී"); between Latin letters they only hide a difference.
func hasInvisible(s string) bool {
	runes := []rune(s)
	for i, r := range runes {
		switch {
		case r == '\u200c' || r == '\u200d':
			if i == 0 || i == len(runes)-1 || !joinerScript(runes[i-1], runes[i+1]) {
				return true
			}
		case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			return true
		}
	}
	return false
}

// joinerScripts are the scripts whose words are spelled with the
// zero-width joiner or non-joiner (RFC 5892's CONTEXTJ cases, in spirit:
// after a virama, or between joining letters).
var joinerScripts = []*unicode.RangeTable{
	unicode.Arabic, unicode.Syriac, unicode.Nko, unicode.Mongolian,
	unicode.Devanagari, unicode.Bengali, unicode.Gurmukhi, unicode.Gujarati, unicode.Oriya,
	unicode.Tamil, unicode.Telugu, unicode.Kannada, unicode.Malayalam, unicode.Sinhala,
	unicode.Myanmar, unicode.Khmer,
}

// joinerScript reports whether before and after are both of one of the
// joinerScripts.
func joinerScript(before, after rune) bool {
	for _, script := range joinerScripts {
		if unicode.Is(script, before) && unicode.Is(script, after) {
			return true
		}
	}
	return false
}

// hasDirectionOverride reports whether s holds a bidi embedding, override
// or isolate (U+202A-U+202E, U+2066-U+2069), which can make text read
// differently from how it is stored. The cover letter refuses only these:
// the joiners and marks also in Cf are needed by real text (Persian,
// emoji, mixed-direction writing).
func hasDirectionOverride(s string) bool {
	for _, r := range s {
		if (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return true
		}
	}
	return false
}

// visible reports whether s has a character that shows: not a space, not a
// format character, not a combining mark with nothing to combine with (a
// variation selector, the grapheme joiner), not one of the blank letters
// (Hangul fillers, the braille blank) that fonts draw as nothing.
func visible(s string) bool {
	for _, r := range s {
		switch {
		case unicode.IsSpace(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Mn, r), unicode.Is(unicode.Me, r):
		case r == '\u115f', r == '\u1160', r == '\u3164', r == '\uffa0', r == '\u2800':
		default:
			return true
		}
	}
	return false
}

// Submission is a validated application with everything the submit
// transaction needs. Its ID and receipt are made before the transaction so
// the response can be stored under the idempotency key in the same
// transaction.
type Submission struct {
	ID              string // UUID
	EventID         string // UUID of the application.submitted event
	PostingSlug     string
	Applicant       Applicant
	EmailNormalized string
	ReceivedAt      time.Time
	// CV is the attached file, nil when none was sent.
	CV *File

	IdempotencyKey string
	Fingerprint    []byte // SHA-256 of the request, see httpapi
	KeyExpiresAt   time.Time

	// Response is stored under the idempotency key and returned again on a
	// replay. The status token must never be part of it (see httpapi).
	ResponseStatus int
	ResponseBody   []byte
}

// SubmitResult is the response to send: the one just stored, or the one
// stored by the request that first used the idempotency key.
type SubmitResult struct {
	Status   int
	Body     []byte
	Replayed bool
}

// Status is what an applicant may see about their application.
type Status struct {
	ID         string
	ReceivedAt time.Time
	Email      EmailStatus
}

// EmailState is the confirmation email's state in the delivery ledger.
type EmailState string

const (
	EmailQueued   EmailState = "queued"
	EmailSending  EmailState = "sending"
	EmailSent     EmailState = "sent"
	EmailRetrying EmailState = "retrying"
	EmailFailed   EmailState = "failed"
	// EmailCancelled: the application was erased before its email went;
	// it never will.
	EmailCancelled EmailState = "cancelled"
)

// EmailStatus is the confirmation email's state, attempts and last attempt.
type EmailStatus struct {
	State         EmailState
	Attempts      int
	LastAttemptAt *time.Time
}

package access

import (
	"strings"
	"time"
)

// Outcome is how an audited call ended.
type Outcome string

const (
	OutcomeOK     Outcome = "ok"
	OutcomeDenied Outcome = "denied"
	OutcomeError  Outcome = "error"
)

// Actors that are not tokens.
const (
	// ActorAnonymous is whoever failed to authenticate; the token they sent
	// is never recorded.
	ActorAnonymous = "anonymous"
	// ActorSystem is the service itself (periodic jobs).
	ActorSystem = "system"
)

// TokenActor is how the audit log names the holder of a token.
func TokenActor(tokenID string) string { return "token:" + tokenID }

// CLIActor is how the audit log names an operator at the database
// (intakectl), by operating-system user name. A name that could not be
// found, or that holds something other than a plain name, is "unknown".
func CLIActor(user string) string {
	if user == "" || len(user) > 100 || strings.IndexFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		user = "unknown"
	}
	return "cli:" + user
}

// Caller is who acts, for the audit row an action writes: the actor, the
// token it authenticated with (empty for intakectl and the system), and the
// request's id.
type Caller struct {
	Actor     string
	TokenID   string
	Role      Role
	RequestID string
}

// Entry is one row of the audit log. It holds ids, slugs and names of
// actions only: never personal data.
type Entry struct {
	ID         int64
	At         time.Time
	Actor      string
	Action     string
	TargetType string
	TargetID   string
	Outcome    Outcome
	RequestID  string
	// Detail is a short note: an erasure's reason, or how many
	// applications a by-email erasure erased.
	Detail string
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	Actor  string
	Action string
	// Target matches the target's id.
	Target string
	Since  *time.Time
	Until  *time.Time
}

package httpapi

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
)

// Page sizes of the admin lists.
const (
	defaultPageLimit = 50
	maxPageLimit     = 100
)

var limitPattern = regexp.MustCompile(`^[0-9]{1,3}$`)

// pageLimit reads ?limit=, 1 to 100, defaultPageLimit when absent.
func pageLimit(c echo.Context) (int, error) {
	s := c.QueryParam("limit")
	if s == "" {
		return defaultPageLimit, nil
	}
	n, err := strconv.Atoi(s)
	if !limitPattern.MatchString(s) || err != nil || n < 1 || n > maxPageLimit {
		return 0, &queryParamError{field: "limit", detail: "must be a whole number from 1 to 100"}
	}
	return n, nil
}

type adminApplicationJSON struct {
	ID         string    `json:"id"`
	Job        string    `json:"job"`
	FullName   string    `json:"full_name"`
	Email      string    `json:"email"`
	ReceivedAt time.Time `json:"received_at"`
}

// handleAdminApplications lists applications newest first, one page at a
// time (keyset pagination: a page never repeats or skips a row because of
// inserts elsewhere, and costs the same deep in the list as at its start).
func handleAdminApplications(store *postgres.Store, keys statustoken.Keys) echo.HandlerFunc {
	return func(c echo.Context) error {
		job := c.QueryParam("job")
		if job != "" && !application.ValidSlug(job) {
			return &queryParamError{field: "job", detail: "must be a posting's slug"}
		}
		limit, err := pageLimit(c)
		if err != nil {
			return err
		}
		var after *application.PageKey
		if cur := c.QueryParam("cursor"); cur != "" {
			if after, err = openApplicationsCursor(keys, job, cur); err != nil {
				return err
			}
		}
		rows, err := store.ApplicationsPage(c.Request().Context(), callerOf(c), job, after, limit+1)
		if err != nil {
			return err
		}
		var next *string
		if len(rows) > limit {
			rows = rows[:limit]
			last := rows[limit-1]
			cur := applicationsCursor(keys, job, application.PageKey{ReceivedAt: last.ReceivedAt, ID: last.ID})
			next = &cur
		}
		out := make([]adminApplicationJSON, len(rows))
		for i, r := range rows {
			out[i] = adminApplicationJSON{ID: r.ID, Job: r.PostingSlug, FullName: r.FullName, Email: r.Email, ReceivedAt: r.ReceivedAt.UTC()}
		}
		return c.JSON(http.StatusOK, map[string]any{"applications": out, "next_cursor": next})
	}
}

type adminRecordJSON struct {
	ID                string             `json:"id"`
	Job               string             `json:"job"`
	ReceivedAt        time.Time          `json:"received_at"`
	FullName          string             `json:"full_name"`
	Email             string             `json:"email"`
	Phone             *string            `json:"phone"`
	CoverLetter       *string            `json:"cover_letter"`
	Links             []string           `json:"links"`
	ConfirmationEmail adminEmailJSON     `json:"confirmation_email"`
	Analytics         adminAnalyticsJSON `json:"analytics"`
	// ErasedAt is set once the applicant's data was erased; the fields
	// above then hold placeholders.
	ErasedAt *time.Time `json:"erased_at"`
	// CV describes the attached file (GET .../cv has its bytes); null
	// when none was sent or it was erased.
	CV *adminCVJSON `json:"cv"`
	// Answers by question key, {} when there are none (or after erasure).
	Answers application.Answers `json:"answers"`
}

type adminEmailJSON struct {
	State          string     `json:"state"`
	Attempts       int        `json:"attempts"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	SentAt         *time.Time `json:"sent_at"`
	LastErrorClass *string    `json:"last_error_class"`
	LastSMTPCode   *int       `json:"last_smtp_code"`
}

type adminAnalyticsJSON struct {
	Recorded   bool       `json:"recorded"`
	RecordedAt *time.Time `json:"recorded_at"`
}

// handleAdminApplication shows one application, the delivery ledger's and
// the analytics sink's view of it included.
func handleAdminApplication(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, err := store.ApplicationRecord(c.Request().Context(), callerOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		out := adminRecordJSON{
			ID: r.ID, Job: r.PostingSlug, ReceivedAt: r.ReceivedAt.UTC(),
			FullName: r.Applicant.FullName, Email: r.Applicant.Email,
			Phone: nonEmpty(r.Applicant.Phone), CoverLetter: nonEmpty(r.Applicant.CoverLetter), Links: r.Applicant.Links,
			ConfirmationEmail: adminEmailJSON{
				State: string(r.Email.State), Attempts: r.Email.Attempts, LastAttemptAt: r.Email.LastAttemptAt,
				SentAt: r.EmailSentAt, LastErrorClass: nonEmpty(r.EmailErrorClass),
			},
			Analytics: adminAnalyticsJSON{Recorded: r.AnalyticsRecordedAt != nil, RecordedAt: r.AnalyticsRecordedAt},
			ErasedAt:  r.ErasedAt,
			CV:        adminCV(r.CV),
			Answers:   r.Applicant.Answers,
		}
		if out.Answers == nil {
			out.Answers = application.Answers{}
		}
		if r.EmailSMTPCode != 0 {
			out.ConfirmationEmail.LastSMTPCode = &r.EmailSMTPCode
		}
		return c.JSON(http.StatusOK, out)
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// A posting's fields as the admin API takes them. Questions are given at
// creation only: PATCH refuses them (400, naming the field), because the
// answers already stored were given to the questions as first worded.
type createJobRequest struct {
	Slug        string `json:"slug"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Location    string `json:"location"`
	Team        string `json:"team"`
	// Questions: see application.Question for their rules.
	Questions []application.Question `json:"questions"`
}

type patchJobRequest struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	Location    *string `json:"location"`
	Team        *string `json:"team"`
	Status      *string `json:"status"`
}

// handleCreateJob creates an open posting.
func handleCreateJob(store *postgres.Store, maxBody int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req createJobRequest
		if err := decodeJSON(c, maxBody, &req); err != nil {
			return err
		}
		p := application.NewPosting{Slug: req.Slug, Title: req.Title, Description: req.Description,
			Location: req.Location, Team: req.Team, Questions: req.Questions}
		if err := p.Validate(); err != nil {
			return err
		}
		created, err := store.AddPosting(c.Request().Context(), callerOf(c), p)
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/api/v1/jobs/"+created.Slug)
		return c.JSON(http.StatusCreated, toJobJSON(created))
	}
}

// handlePatchJob changes a posting's title, description, location, team or
// status.
func handlePatchJob(store *postgres.Store, maxBody int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req patchJobRequest
		if err := decodeJSON(c, maxBody, &req); err != nil {
			return err
		}
		patch := application.PostingPatch{Title: req.Title, Description: req.Description,
			Location: req.Location, Team: req.Team}
		if req.Status != nil {
			st := application.PostingStatus(*req.Status)
			patch.Status = &st
		}
		if err := patch.Validate(); err != nil {
			return err
		}
		p, err := store.UpdatePosting(c.Request().Context(), callerOf(c), c.Param("slug"), patch)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toJobJSON(p))
	}
}

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Token      string     `json:"token,omitempty"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func toTokenJSON(t access.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

type createTokenRequest struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// handleCreateToken mints a token no higher than the caller's role and
// shows it this once.
func handleCreateToken(store *postgres.Store, maxBody int64, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req createTokenRequest
		if err := decodeJSON(c, maxBody, &req); err != nil {
			return err
		}
		spec := access.NewTokenSpec{Name: req.Name, Role: access.Role(req.Role), ExpiresAt: req.ExpiresAt}
		if err := spec.Validate(now()); err != nil {
			return err
		}
		tok, secret, err := store.CreateToken(c.Request().Context(), callerOf(c), spec)
		if err != nil {
			return err
		}
		out := toTokenJSON(tok)
		out.Token = secret
		return c.JSON(http.StatusCreated, out)
	}
}

// handleListTokens lists every token (never their text).
func handleListTokens(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		tokens, err := store.Tokens(c.Request().Context(), callerOf(c))
		if err != nil {
			return err
		}
		out := make([]tokenJSON, len(tokens))
		for i, t := range tokens {
			out[i] = toTokenJSON(t)
		}
		return c.JSON(http.StatusOK, map[string]any{"tokens": out})
	}
}

// handleRevokeToken revokes a token; revoking it again answers the same.
func handleRevokeToken(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, err := store.RevokeToken(c.Request().Context(), callerOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toTokenJSON(tok))
	}
}

type auditJSON struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	TargetType string    `json:"target_type"`
	Target     string    `json:"target"`
	Outcome    string    `json:"outcome"`
	RequestID  string    `json:"request_id"`
}

// handleAudit pages through the audit log, newest first, filtered by
// actor, action, target (id) and time (since inclusive, until exclusive).
func handleAudit(store *postgres.Store, keys statustoken.Keys) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := access.AuditFilter{Actor: c.QueryParam("actor"), Action: c.QueryParam("action"), Target: c.QueryParam("target")}
		for name, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target} {
			if len(v) > 200 || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) || !utf8.ValidString(v) {
				return &queryParamError{field: name, detail: "must be at most 200 printable characters"}
			}
		}
		var err error
		if f.Since, err = timeParam(c, "since"); err != nil {
			return err
		}
		if f.Until, err = timeParam(c, "until"); err != nil {
			return err
		}
		limit, err := pageLimit(c)
		if err != nil {
			return err
		}
		filters := strings.Join([]string{f.Actor, f.Action, f.Target, c.QueryParam("since"), c.QueryParam("until")}, "\x00")
		var before int64
		if cur := c.QueryParam("cursor"); cur != "" {
			if before, err = openAuditCursor(keys, filters, cur); err != nil {
				return err
			}
		}
		entries, err := store.AuditEntries(c.Request().Context(), callerOf(c), f, before, limit+1)
		if err != nil {
			return err
		}
		var next *string
		if len(entries) > limit {
			entries = entries[:limit]
			cur := auditCursor(keys, filters, entries[limit-1].ID)
			next = &cur
		}
		out := make([]auditJSON, len(entries))
		for i, e := range entries {
			out[i] = auditJSON{At: e.At.UTC(), Actor: e.Actor, Action: e.Action, TargetType: e.TargetType, Target: e.TargetID,
				Outcome: string(e.Outcome), RequestID: e.RequestID}
		}
		return c.JSON(http.StatusOK, map[string]any{"entries": out, "next_cursor": next})
	}
}

func timeParam(c echo.Context, name string) (*time.Time, error) {
	s := c.QueryParam(name)
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, &queryParamError{field: name, detail: "must be an RFC 3339 time, like 2026-01-02T15:04:05Z"}
	}
	return &t, nil
}

// handleEraseApplication erases one application's personal data: 204, and
// 204 again for an application erased before.
func handleEraseApplication(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := store.EraseApplication(c.Request().Context(), callerOf(c), c.Param("id"), ""); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

type erasureRequest struct {
	Email string `json:"email"`
}

// handleErasure answers a data-subject request: every application of the
// address, on every posting, erased in one transaction.
func handleErasure(store *postgres.Store, maxBody int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req erasureRequest
		if err := decodeJSON(c, maxBody, &req); err != nil {
			return err
		}
		email, err := application.ErasureEmail(req.Email)
		if err != nil {
			return err
		}
		n, err := store.EraseByEmail(c.Request().Context(), callerOf(c), email, "")
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]int{"erased": n})
	}
}

package httpapi

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
	"github.com/intake/intake/internal/web"
)

// The applicant pages: server-rendered, usable without JavaScript, posting
// through the same submitApplication as the JSON API.

type pageBase struct {
	Title   string
	Refresh int // seconds; 0 for none
}

type indexView struct {
	pageBase
	Postings []application.Posting
}

type postingView struct {
	pageBase
	Posting        application.Posting
	Values         formValues
	Errors         []formError
	Notice         string
	CSRF           string
	IdempotencyKey string
}

// FieldError is the message to show beside field, if any.
func (v postingView) FieldError(field string) string {
	for _, e := range v.Errors {
		if e.Field == field {
			return e.Message
		}
	}
	return ""
}

type formValues struct {
	FullName, Email, Phone, CoverLetter, Links string
}

type formError struct {
	Field, Label, Message string
}

type statusView struct {
	pageBase
	ReceivedAt time.Time
	State      string
	StateText  string
	Attempts   int
}

type messageView struct {
	pageBase
	Body string
}

var fieldLabels = map[string]string{
	"full_name":    "Full name",
	"email":        "Email",
	"phone":        "Phone",
	"cover_letter": "Cover letter",
	"links":        "Links",
}

// render writes a page with status. Pages are rendered to a buffer first
// so a template error becomes a clean 500, not half a page.
func render(c echo.Context, status int, page string, data any) error {
	var buf bytes.Buffer
	if err := web.Render(&buf, page, data); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

func handleHome(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		postings, err := store.OpenPostings(c.Request().Context())
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, "index", indexView{pageBase: pageBase{Title: "Open positions"}, Postings: postings})
	}
}

// handlePostingPage shows a posting and its form. Each render carries a new
// idempotency key: a double click, a resubmit, or the back button followed
// by submit sends the same key again and lands on the same status page.
func handlePostingPage(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := store.Posting(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		if p.Status != application.PostingOpen {
			return render(c, http.StatusGone, "message", closedView(p))
		}
		return render(c, http.StatusOK, "posting", postingView{
			pageBase:       pageBase{Title: p.Title},
			Posting:        p,
			CSRF:           csrfToken(c),
			IdempotencyKey: uuid.NewString(),
		})
	}
}

// handleApply takes the form. Success answers 303 to the status page (post,
// redirect, get); a problem re-renders the form with the values kept.
func handleApply(store *postgres.Store, waker *postgres.Waker, now func() time.Time, cfg config.Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		p, err := store.Posting(ctx, c.Param("slug"))
		if err != nil {
			return err
		}
		if p.Status != application.PostingOpen {
			return render(c, http.StatusConflict, "message", closedView(p))
		}
		if mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationForm {
			return errUnsupportedMediaType
		}
		values := formValues{
			FullName:    c.FormValue("full_name"),
			Email:       c.FormValue("email"),
			Phone:       c.FormValue("phone"),
			CoverLetter: textareaValue(c, "cover_letter"),
			Links:       textareaValue(c, "links"),
		}
		view := postingView{
			pageBase:       pageBase{Title: p.Title},
			Posting:        p,
			Values:         values,
			CSRF:           csrfToken(c),
			IdempotencyKey: c.FormValue("idempotency_key"),
		}
		if !application.ValidIdempotencyKey(view.IdempotencyKey) {
			view.IdempotencyKey = uuid.NewString()
			view.Notice = "This form had expired. Please check your details and send it again."
			return render(c, http.StatusBadRequest, "posting", view)
		}

		applicant := application.Applicant{
			FullName:    values.FullName,
			Email:       values.Email,
			Phone:       values.Phone,
			CoverLetter: values.CoverLetter,
			Links:       splitLines(values.Links),
		}
		res, err := submitApplication(ctx, store, waker, now(), cfg, p.Slug, view.IdempotencyKey, applicant)
		setSubmitOutcome(c, res, err)
		var verr *application.ValidationError
		switch {
		case errors.As(err, &verr):
			view.Errors = formErrors(verr)
			return render(c, http.StatusUnprocessableEntity, "posting", view)
		case errors.Is(err, application.ErrDuplicateApplication):
			// Says nothing about the first application, only that it exists.
			view.Notice = "We already have an application from this email address for this position, so there is nothing more to send."
			return render(c, http.StatusConflict, "posting", view)
		case errors.Is(err, application.ErrIdempotencyKeyReused):
			view.IdempotencyKey = uuid.NewString()
			view.Notice = "This form was already sent with other details. Please check them and send it again."
			return render(c, http.StatusUnprocessableEntity, "posting", view)
		case errors.Is(err, application.ErrIdempotencyKeyInFlight):
			// The first click is still being stored; sending the same form
			// again (same key) will land on its status page.
			view.Notice = "We are still saving this application. Please wait a few seconds and send the form again."
			return render(c, http.StatusConflict, "posting", view)
		case errors.Is(err, application.ErrPostingClosed):
			return render(c, http.StatusConflict, "message", closedView(p))
		case err != nil:
			return err
		}

		r, err := parseReceipt(res.Body)
		if err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, statusPagePath(cfg.StatusTokens, r.ID))
	}
}

// statusPagePath is the status page of an application, token included: the
// path the form redirects to and, on INTAKE_PUBLIC_URL, the link in the
// confirmation email (internal/mail).
func statusPagePath(keys statustoken.Keys, id string) string {
	return "/applications/" + url.PathEscape(id) + "?" + url.Values{"token": {keys.Derive(id)}}.Encode()
}

// handleStatusPage tells the applicant their application was received and
// where the confirmation email is, refreshing while that can still change.
func handleStatusPage(store *postgres.Store, keys statustoken.Keys) echo.HandlerFunc {
	return func(c echo.Context) error {
		st, err := statusFor(c, store, keys)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		view := statusView{
			pageBase:   pageBase{Title: "Application received"},
			ReceivedAt: st.ReceivedAt,
			State:      string(st.Email.State),
			StateText:  emailStateText(st.Email.State),
			Attempts:   st.Email.Attempts,
		}
		switch st.Email.State {
		case application.EmailSent, application.EmailFailed:
		default:
			view.Refresh = 5
		}
		return render(c, http.StatusOK, "status", view)
	}
}

func emailStateText(s application.EmailState) string {
	switch s {
	case application.EmailSending:
		return "We are sending your confirmation email now."
	case application.EmailSent:
		return "Your confirmation email was sent. Check your inbox (and your spam folder)."
	case application.EmailRetrying:
		return "Your confirmation email is delayed; we keep trying."
	case application.EmailFailed:
		return "We could not send your confirmation email. Your application is received all the same."
	default:
		return "Your confirmation email is queued and will be sent shortly."
	}
}

func closedView(p application.Posting) messageView {
	return messageView{
		pageBase: pageBase{Title: "This position is closed"},
		Body:     "“" + p.Title + "” no longer takes applications. Thank you for your interest.",
	}
}

// messageForStatus is the friendly page for an error on a page route.
func messageForStatus(status int) messageView {
	title, body := "Something went wrong", "Sorry, something went wrong on our side. Please try again in a moment."
	switch status {
	case http.StatusNotFound:
		title, body = "Page not found", "We could not find this page. The link may be incomplete or out of date."
	case http.StatusBadRequest, http.StatusForbidden:
		title, body = "This form has expired", "Please go back, reload the page and send the form again."
	case http.StatusRequestEntityTooLarge:
		title, body = "Your application is too long", "Please go back, shorten the cover letter and send it again."
	case http.StatusUnsupportedMediaType:
		title, body = "Unsupported form", "Please send the application with the form on the position's page."
	case http.StatusTooManyRequests:
		title, body = "Too many attempts", "Please wait a little and try again."
	case http.StatusServiceUnavailable:
		title, body = "We cannot take applications right now", "Nothing was saved. Please try again in a minute."
	case http.StatusMethodNotAllowed:
		title, body = "Page not found", "We could not find this page."
	}
	return messageView{pageBase: pageBase{Title: title}, Body: body}
}

// formErrors turns validation errors into messages beside the form's
// fields; the API's "links[2]" becomes the links box's "link 3".
func formErrors(v *application.ValidationError) []formError {
	var out []formError
	seen := map[string]bool{}
	for _, fe := range v.Errors {
		field, msg := fe.Field, fe.Message
		if i := strings.IndexByte(field, '['); i > 0 {
			n, _ := strconv.Atoi(strings.TrimSuffix(field[i+1:], "]"))
			field, msg = field[:i], "link "+strconv.Itoa(n+1)+" "+msg
		}
		if seen[field] {
			continue
		}
		seen[field] = true
		out = append(out, formError{Field: field, Label: fieldLabels[field], Message: msg})
	}
	return out
}

// textareaValue reads a textarea's value as the applicant typed it. Browsers
// send every line break in a form as CRLF, but count it as one character
// against maxlength and the JSON API receives LF: without this, a cover
// letter that fits the page's maxlength fails the length check, and the form
// stores different text from the API.
func textareaValue(c echo.Context, name string) string {
	return strings.ReplaceAll(c.FormValue(name), "\r\n", "\n")
}

// splitLines reads the links box: one URL per line, blank lines ignored.
func splitLines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func csrfToken(c echo.Context) string {
	token, _ := c.Get(csrfContextKey).(string)
	return token
}

// handleStatic serves the stylesheet and script. Any name that is not one
// of them, a directory included, is the 404 page.
func handleStatic() echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("*")
		content, ok := web.Asset(name)
		if !ok {
			return application.ErrNotFound
		}
		http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(content))
		return nil
	}
}

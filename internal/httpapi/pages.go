package httpapi

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/cvfile"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
	"github.com/intake/intake/internal/web"
)

// The applicant pages: server-rendered, usable without JavaScript, posting
// through the same submitApplication as the JSON API.

type pageBase struct {
	Title    string
	Employer application.Employer
}

type indexView struct {
	pageBase
	Postings []application.Posting
	Groups   []postingGroup
}

// postingGroup is the open postings of one team, as the home page lists
// them; Team is empty for the postings that name none.
type postingGroup struct {
	Team     string
	Postings []application.Posting
}

// groupByTeam groups postings by team, teams in alphabetical order and the
// postings without a team last, each group in the order given.
func groupByTeam(postings []application.Posting) []postingGroup {
	var groups []postingGroup
	index := map[string]int{}
	for _, p := range postings {
		i, ok := index[p.Team]
		if !ok {
			i = len(groups)
			index[p.Team] = i
			groups = append(groups, postingGroup{Team: p.Team})
		}
		groups[i].Postings = append(groups[i].Postings, p)
	}
	slices.SortStableFunc(groups, func(a, b postingGroup) int {
		switch {
		case a.Team == b.Team:
			return 0
		case a.Team == "":
			return 1
		case b.Team == "":
			return -1
		}
		return strings.Compare(strings.ToLower(a.Team), strings.ToLower(b.Team))
	})
	return groups
}

type postingView struct {
	pageBase
	Posting application.Posting
	Values  formValues
	Errors  []formError
	Notice  string
	// Done: the notice is the end of it (already applied); no form under it.
	Done           bool
	CSRF           string
	IdempotencyKey string
	// CVMax is the largest CV, in words ("5 MB"), for the file input's hint.
	CVMax string
}

// CVAccept is the file input's accept attribute: a hint to the browser's
// file picker; the server decides by the content.
func (postingView) CVAccept() string { return cvfile.Accept }

// FieldError is the message to show beside field, if any.
func (v postingView) FieldError(field string) string {
	for _, e := range v.Errors {
		if e.Field == field {
			return e.Message
		}
	}
	return ""
}

// questionField is one of the posting's questions as the form shows it.
type questionField struct {
	// Name is the form field's name and the id of its input, or of its
	// first radio button: the error summary links to it.
	Name        string
	Label, Hint string
	Kind        application.QuestionKind
	Required    bool
	Value       string // as the form sent it, to show it again
	Error       string
	DescribedBy string // ids of the hint and the error, those it has
	Options     []questionOption
}

// questionOption is one radio button of a yes_no or choice question.
type questionOption struct {
	ID, Value, Label string
	Checked          bool
}

// Questions are the posting's questions with the values and errors of the
// form being shown.
func (v postingView) Questions() []questionField {
	out := make([]questionField, len(v.Posting.Questions))
	for i, q := range v.Posting.Questions {
		f := questionField{
			Name: "answers." + q.Key, Label: q.Label, Hint: q.Hint, Kind: q.Kind, Required: q.Required,
			Value: v.Values.Answers[q.Key], Error: v.FieldError("answers." + q.Key),
		}
		var ids []string
		if f.Hint != "" {
			ids = append(ids, f.Name+"-hint")
		}
		if f.Error != "" {
			ids = append(ids, f.Name+"-error")
		}
		f.DescribedBy = strings.Join(ids, " ")
		var values, labels []string
		switch q.Kind {
		case application.KindYesNo:
			values, labels = []string{"yes", "no"}, []string{"Yes", "No"}
		case application.KindChoice:
			values, labels = q.Choices, q.Choices
		}
		for j, val := range values {
			id := f.Name
			if j > 0 {
				id += "-" + strconv.Itoa(j+1)
			}
			f.Options = append(f.Options, questionOption{ID: id, Value: val, Label: labels[j], Checked: val == f.Value})
		}
		out[i] = f
	}
	return out
}

type formValues struct {
	FullName, Email, Phone, CoverLetter, Links string
	// Answers by question key, as the form sent them.
	Answers map[string]string
}

// formError is one field's problem as a sentence ("Link 2 must be an http
// or https URL."), shown beside the field and in the summary; a field with
// several problems (links) has them all, one sentence after another.
type formError struct {
	Field, Message string
}

type statusView struct {
	pageBase
	ReceivedAt time.Time
	State      string
	StateText  string
	Attempts   int
	Reference  string
	// Watch: the state can still change. The page offers a link to look
	// again, and its script (when it runs) looks every few seconds and
	// updates the state in place; no meta refresh, which reloads the page
	// under a screen reader's or a keyboard user's feet (WCAG 2.2.1).
	Watch bool
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
	"cv":           "CV",
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

func handleHome(store *postgres.Store, employer application.Employer) echo.HandlerFunc {
	return func(c echo.Context) error {
		postings, err := store.OpenPostings(c.Request().Context())
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, "index", indexView{pageBase: pageBase{Title: "Open positions", Employer: employer},
			Postings: postings, Groups: groupByTeam(postings)})
	}
}

// handlePostingPage shows a posting and its form. Each render carries a new
// idempotency key: a double click, a resubmit, or the back button followed
// by submit sends the same key again and lands on the same status page.
func handlePostingPage(store *postgres.Store, employer application.Employer, maxCV int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := store.Posting(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		if p.Status != application.PostingOpen {
			return render(c, http.StatusGone, "message", closedView(p, employer))
		}
		// The form carries a CSRF token and an idempotency key of its own:
		// no cache may hand them to anyone else.
		c.Response().Header().Set("Cache-Control", "no-store")
		return render(c, http.StatusOK, "posting", postingView{
			pageBase:       pageBase{Title: p.Title, Employer: employer},
			Posting:        p,
			CSRF:           csrfToken(c),
			IdempotencyKey: uuid.NewString(),
			CVMax:          sizeText(maxCV),
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
			return render(c, http.StatusConflict, "message", closedView(p, cfg.Employer))
		}
		if mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); err != nil ||
			(mt != echo.MIMEApplicationForm && mt != echo.MIMEMultipartForm) {
			return errUnsupportedMediaType
		}
		names := []string{"full_name", "email", "phone", "cover_letter", "links", "idempotency_key"}
		for _, q := range p.Questions {
			names = append(names, "answers."+q.Key)
		}
		form, err := postedForm(c, names...)
		if err != nil {
			return err
		}
		values := formValues{
			FullName:    form["full_name"],
			Email:       form["email"],
			Phone:       form["phone"],
			CoverLetter: textareaValue(form["cover_letter"]),
			Links:       textareaValue(form["links"]),
			Answers:     map[string]string{},
		}
		for _, q := range p.Questions {
			values.Answers[q.Key] = textareaValue(form["answers."+q.Key])
		}
		c.Response().Header().Set("Cache-Control", "no-store") // the form carries its CSRF token and key
		view := postingView{
			pageBase:       pageBase{Title: p.Title, Employer: cfg.Employer},
			Posting:        p,
			Values:         values,
			CSRF:           csrfToken(c),
			IdempotencyKey: form["idempotency_key"],
			CVMax:          sizeText(cfg.MaxCVBytes),
		}
		if mf := postedMultipart(c); mf != nil && mf.tooLong {
			if !application.ValidIdempotencyKey(view.IdempotencyKey) {
				view.IdempotencyKey = uuid.NewString() // it came after the text that went over
			}
			view.Notice = "This form is too long to send. Please shorten the longest answers and send it again."
			return render(c, http.StatusRequestEntityTooLarge, "posting", withCVAgain(view, mf.cv))
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
			Answers:     formAnswers(p.Questions, values.Answers),
		}
		cv := postedCV(c)
		res, err := submitApplication(ctx, store, waker, now(), cfg, p.Slug, p.Questions, view.IdempotencyKey, applicant, cv)
		setSubmitOutcome(c, res, err)
		var verr *application.ValidationError
		switch {
		case isCVRefusal(err):
			view.Errors = append(formErrorsOf(err, p.Questions), cvFormErrors(err)...)
			return render(c, problemFor(err).Status, "posting", withCVAgain(view, cv))
		case errors.As(err, &verr):
			view.Errors = formErrors(verr, p.Questions)
			return render(c, http.StatusUnprocessableEntity, "posting", withCVAgain(view, cv))
		case errors.Is(err, application.ErrDuplicateApplication):
			// Says nothing about the first application, only that it exists.
			view.Notice = "We already have an application from this email address for this position, so there is nothing more to send."
			view.Done = true
			return render(c, http.StatusConflict, "posting", view)
		case errors.Is(err, application.ErrIdempotencyKeyReused):
			view.IdempotencyKey = uuid.NewString()
			view.Notice = "This form was already sent with other details. Please check them and send it again."
			return render(c, http.StatusUnprocessableEntity, "posting", withCVAgain(view, cv))
		case errors.Is(err, application.ErrIdempotencyKeyInFlight):
			// The first click is still being stored; sending the same form
			// again (same key) will land on its status page.
			view.Notice = "We are still saving this application. Please wait a few seconds and send the form again."
			return render(c, http.StatusConflict, "posting", withCVAgain(view, cv))
		case errors.Is(err, application.ErrPostingClosed):
			return render(c, http.StatusConflict, "message", closedView(p, cfg.Employer))
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
func handleStatusPage(store *postgres.Store, keys statustoken.Keys, employer application.Employer) echo.HandlerFunc {
	return func(c echo.Context) error {
		st, err := statusFor(c, store, keys)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		view := statusView{
			pageBase:   pageBase{Title: "Application received", Employer: employer},
			Reference:  application.Reference(st.ID),
			ReceivedAt: st.ReceivedAt,
			State:      string(st.Email.State),
			StateText:  emailStateText(st.Email.State),
			Attempts:   st.Email.Attempts,
		}
		view.Watch = st.Email.State != application.EmailSent && st.Email.State != application.EmailFailed &&
			st.Email.State != application.EmailCancelled
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
	case application.EmailCancelled:
		return "No confirmation email will be sent."
	default:
		return "Your confirmation email is queued and will be sent shortly."
	}
}

func closedView(p application.Posting, employer application.Employer) messageView {
	return messageView{
		pageBase: pageBase{Title: "This position is closed", Employer: employer},
		Body:     "“" + p.Title + "” no longer takes applications. Thank you for your interest.",
	}
}

// messageForStatus is the friendly page for an error on a page route.
func messageForStatus(status int, employer application.Employer) messageView {
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
	case http.StatusGone:
		title, body = "Application deleted", "This application was deleted, as its applicant asked: we no longer hold its details."
	}
	return messageView{pageBase: pageBase{Title: title, Employer: employer}, Body: body}
}

// formErrors turns validation errors into sentences beside the form's
// fields: the API's "links[2]" problem becomes "Link 3 …" in the links
// box's message, beside every other bad link's, and "answers.<key>" names
// the question by its label.
func formErrors(v *application.ValidationError, questions []application.Question) []formError {
	labels := make(map[string]string, len(questions))
	for _, q := range questions {
		labels["answers."+q.Key] = "The answer to “" + q.Label + "”"
	}
	var out []formError
	index := map[string]int{}
	for _, fe := range v.Errors {
		field, subject := fe.Field, fieldLabels[fe.Field]
		if label, ok := labels[field]; ok {
			subject = label
		}
		if i := strings.IndexByte(field, '['); i > 0 {
			n, _ := strconv.Atoi(strings.TrimSuffix(field[i+1:], "]"))
			field, subject = field[:i], "Link "+strconv.Itoa(n+1)
		}
		sentence := subject + " " + fe.Message + "."
		if i, ok := index[field]; ok {
			out[i].Message += " " + sentence
			continue
		}
		index[field] = len(out)
		out = append(out, formError{Field: field, Message: sentence})
	}
	return out
}

// formAnswers reads the form's answers as the JSON API takes them: a yes_no
// question's "yes" and "no" become true and false, and a question left
// blank is no answer. Anything else is passed on as sent, for validation to
// refuse.
func formAnswers(questions []application.Question, sent map[string]string) application.Answers {
	answers := application.Answers{}
	for _, q := range questions {
		v := sent[q.Key]
		switch {
		case v == "":
		case q.Kind == application.KindYesNo && v == "yes":
			answers[q.Key] = true
		case q.Kind == application.KindYesNo && v == "no":
			answers[q.Key] = false
		default:
			answers[q.Key] = v
		}
	}
	return answers
}

// textareaValue reads a textarea's value as the applicant typed it. Browsers
// send every line break in a form as CRLF, but count it as one character
// against maxlength and the JSON API receives LF: without this, a cover
// letter that fits the page's maxlength fails the length check, and the form
// stores different text from the API.
func textareaValue(v string) string {
	return strings.ReplaceAll(v, "\r\n", "\n")
}

// postedForm reads the named fields from the form's body only (echo's
// FormValue also takes the URL's query string, so "?email=" would fill in
// a field the body left out), and refuses a field sent twice: the form is
// read one way, as the JSON API is.
func postedForm(c echo.Context, names ...string) (map[string]string, error) {
	posted, err := postedValues(c)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		switch vs := posted[name]; len(vs) {
		case 0:
		case 1:
			out[name] = vs[0]
		default:
			return nil, &badRequestError{field: name, detail: "repeated field"}
		}
	}
	return out, nil
}

// postedValues are the form's fields: from the multipart body the csrf
// middleware read (the form with its file input), or from the
// url-encoded one.
func postedValues(c echo.Context) (map[string][]string, error) {
	if form := postedMultipart(c); form != nil {
		return form.values, nil
	}
	r := c.Request()
	if err := r.ParseForm(); err != nil {
		return nil, &badRequestError{detail: "could not read the form"}
	}
	return r.PostForm, nil
}

// postedCV is the form's file, nil when none was chosen.
func postedCV(c echo.Context) *upload {
	if form := postedMultipart(c); form != nil {
		return form.cv
	}
	return nil
}

// postedMultipart is the multipart body the csrf middleware read, nil for
// a url-encoded form.
func postedMultipart(c echo.Context) *multipartForm {
	form, _ := c.Get(multipartContextKey).(*multipartForm)
	return form
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

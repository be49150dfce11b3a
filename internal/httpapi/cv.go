package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/cvfile"
	"github.com/intake/intake/internal/postgres"
)

// A submit may carry one file, the CV, in a multipart/form-data body: the
// JSON API's (a part "application" holding the JSON body, and "cv") and the
// web form's (its fields, and "cv"). Both bodies are read in one pass by
// readMultipart, never holding more than the limits in memory and never
// spilling to disk.

// errSubmitMediaType is errUnsupportedMediaType for the submit route,
// which takes either.
var errSubmitMediaType = fmt.Errorf("%w or multipart/form-data", errUnsupportedMediaType)

// errCVUnsupported: a CV of a kind Intake does not take (415).
var errCVUnsupported = errors.New("the CV is not a PDF, DOCX, ODT or plain text file")

// cvTooLargeError: a CV over INTAKE_MAX_CV_BYTES (413).
type cvTooLargeError struct{ limit int64 }

func (e *cvTooLargeError) Error() string { return "the CV is larger than " + sizeText(e.limit) }

// multipartOverhead is the room a multipart body gets beyond its JSON (or
// form fields) and its CV, for the parts' headers and boundaries.
const multipartOverhead = 64 << 10

// multipartBodyBytes is the most a multipart submit body may be: its
// fields, its CV and the overhead.
func multipartBodyBytes(cfg config.Config) int64 {
	return submitBodyBytes(cfg) + cfg.MaxCVBytes + multipartOverhead
}

// submitBodyBytes is what a submit's fields (the JSON body, or the form's
// text) may take: INTAKE_MAX_BODY_BYTES, and the answers' worst case on
// top, so that answers within every per-question limit are never refused
// for the body's size (20 long answers of 5,000 characters are up to
// 400,000 bytes of UTF-8).
func submitBodyBytes(cfg config.Config) int64 {
	return cfg.MaxBodyBytes + application.MaxAnswersBytes
}

// maxParts bounds the parts of one body: a form has a dozen fields, so a
// body of thousands of empty parts is an attack, not an application.
const maxParts = 200

const multipartContextKey = "multipart"

// upload is the file sent as the part "cv", before it is recognised.
type upload struct {
	filename string
	declared string // the part's Content-Type, only compared with the content
	content  []byte
	// tooLarge: the file went over the limit; content is not kept.
	tooLarge bool
	limit    int64
}

// multipartForm is a multipart body as read: its text parts by name, in
// order, and its file.
type multipartForm struct {
	values map[string][]string
	cv     *upload // nil when no file was chosen
	// tooLong: the text parts went over submitBodyBytes; values holds the
	// parts before the one that did, for the form to be shown again.
	tooLong bool
}

func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	return err == nil && mt == echo.MIMEMultipartForm
}

// readMultipart reads a multipart/form-data body in one pass: at most
// submitBodyBytes of text parts in all, and one file part "cv" of at most
// cfg.MaxCVBytes. A CV over its limit is read to its end and dropped
// (upload.tooLarge), so the other fields are still there to answer with; a
// body that goes over the whole limit inside the CV stops there, with the
// fields read before it. More text than the limit stops the reading with
// form.tooLong (the form's CSRF token, its first field, is then still
// there to check); a second "cv" part is refused by name.
func readMultipart(c echo.Context, cfg config.Config) (*multipartForm, error) {
	r := c.Request()
	_, params, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || params["boundary"] == "" {
		return nil, &badRequestError{detail: "malformed multipart body: no boundary"}
	}
	body := http.MaxBytesReader(c.Response(), r.Body, multipartBodyBytes(cfg))
	mr := multipart.NewReader(body, params["boundary"])
	form := &multipartForm{values: map[string][]string{}}
	textLeft := submitBodyBytes(cfg)
	cvSeen := false
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		// Only io.EOF itself is the closing boundary: a body cut short
		// ends in an error that wraps io.EOF ("multipart: NextPart: EOF"),
		// and is malformed.
		if err == io.EOF {
			return form, nil
		}
		if err != nil {
			return form, multipartReadError(err)
		}
		name := p.FormName()
		switch {
		case parts >= maxParts:
			return form, &badRequestError{detail: fmt.Sprintf("more than %d parts", maxParts)}
		case name == "":
			return form, &badRequestError{detail: "a part without a form-data name"}
		case name == "cv" && cvSeen:
			return form, &badRequestError{field: "cv", detail: "repeated part"}
		case name == "cv":
			cvSeen = true
			up, err := readUpload(p, cfg.MaxCVBytes)
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				form.cv = &upload{tooLarge: true, limit: cfg.MaxCVBytes}
				return form, nil
			}
			if err != nil {
				return form, multipartReadError(err)
			}
			form.cv = up
		default:
			v, err := io.ReadAll(io.LimitReader(p, textLeft+1))
			if err != nil {
				return form, multipartReadError(err)
			}
			if textLeft -= int64(len(v)); textLeft < 0 {
				form.tooLong = true
				return form, nil
			}
			form.values[name] = append(form.values[name], string(v))
		}
	}
}

// readUpload reads the part "cv". A part with no file name and no bytes is
// a form's file input left empty: no file (nil).
func readUpload(p *multipart.Part, limit int64) (*upload, error) {
	content, err := io.ReadAll(io.LimitReader(p, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(content)) > limit {
		if _, err := io.Copy(io.Discard, p); err != nil {
			return nil, err
		}
		return &upload{tooLarge: true, limit: limit}, nil
	}
	if len(content) == 0 && p.FileName() == "" {
		return nil, nil
	}
	return &upload{filename: p.FileName(), declared: p.Header.Get(echo.HeaderContentType), content: content}, nil
}

func multipartReadError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge
	}
	return &badRequestError{detail: "malformed multipart body"}
}

// decodeSubmit reads the body of a JSON API submit into dst: a JSON body as
// decodeJSON does, or a multipart/form-data one whose part "application"
// is that JSON (decoded by the same strict rules) beside an optional file
// part "cv". Any other part, or a part sent twice, is refused by name.
func decodeSubmit(c echo.Context, cfg config.Config, dst any) (*upload, error) {
	if !isMultipart(c.Request()) {
		err := decodeJSON(c, submitBodyBytes(cfg), dst)
		if errors.Is(err, errUnsupportedMediaType) {
			return nil, errSubmitMediaType
		}
		return nil, err
	}
	if c.Request().ContentLength > multipartBodyBytes(cfg) {
		return nil, errBodyTooLarge
	}
	form, err := readMultipart(c, cfg)
	if err != nil {
		return nil, err
	}
	if form.tooLong {
		return nil, errBodyTooLarge
	}
	if form.cv != nil && form.cv.tooLarge {
		return nil, &cvTooLargeError{limit: cfg.MaxCVBytes}
	}
	for name, vs := range form.values {
		switch {
		case name != "application":
			return nil, &badRequestError{field: name, detail: `unknown part; send "application" and optionally "cv"`}
		case len(vs) > 1:
			return nil, &badRequestError{field: name, detail: "repeated part"}
		}
	}
	app, ok := form.values["application"]
	if !ok {
		return nil, &badRequestError{field: "application", detail: "missing part: the application's JSON"}
	}
	if err := decodeObject([]byte(app[0]), dst); err != nil {
		return nil, err
	}
	return form.cv, nil
}

// acceptCV recognises an upload by its content and makes it the file to
// store, or says why not: too large, a kind not taken (errCVUnsupported),
// or empty or not what its name or type says (a validation error on cv).
// No upload is no file.
func acceptCV(up *upload) (*application.File, error) {
	if up == nil {
		return nil, nil
	}
	if up.tooLarge {
		return nil, &cvTooLargeError{limit: up.limit}
	}
	contentType, err := cvfile.Check(up.content, up.filename, up.declared)
	var mismatch *cvfile.MismatchError
	switch {
	case errors.As(err, &mismatch):
		return nil, &application.ValidationError{Errors: []application.FieldError{{Field: "cv",
			Message: "says it is " + cvfile.KindName(mismatch.Claimed) + " but its content is not"}}}
	case errors.Is(err, cvfile.ErrEmpty):
		return nil, &application.ValidationError{Errors: []application.FieldError{{Field: "cv", Message: "is an empty file"}}}
	case err != nil:
		return nil, errCVUnsupported
	}
	return &application.File{
		Filename:    cvfile.SafeName(up.filename, contentType),
		ContentType: contentType,
		Content:     up.content,
		SHA256:      sha256.Sum256(up.content),
	}, nil
}

// validateSubmission checks (and normalises, as Applicant.Validate does)
// the applicant's fields and checks the CV, together, so one answer lists
// every problem: a CV that is invalid joins the fields'
// validation error; one too large or of a kind not taken comes first
// (413, 415), with the fields' errors joined for the form to show.
func validateSubmission(a *application.Applicant, questions []application.Question, up *upload) (*application.File, error) {
	fieldsErr := a.ValidateFor(questions)
	file, cvErr := acceptCV(up)
	var fieldsInvalid, cvInvalid *application.ValidationError
	switch {
	case cvErr == nil:
		return file, fieldsErr
	case fieldsErr == nil:
		return nil, cvErr
	case errors.As(fieldsErr, &fieldsInvalid) && errors.As(cvErr, &cvInvalid):
		return nil, &application.ValidationError{Errors: append(fieldsInvalid.Errors, cvInvalid.Errors...)}
	default:
		return nil, errors.Join(cvErr, fieldsErr)
	}
}

// isCVRefusal: the CV was too large or of a kind not taken (413, 415).
func isCVRefusal(err error) bool {
	var tooLarge *cvTooLargeError
	return errors.As(err, &tooLarge) || errors.Is(err, errCVUnsupported)
}

// cvFormErrors is the form's sentence for a CV refusal.
func cvFormErrors(err error) []formError {
	if errors.Is(err, errCVUnsupported) {
		return []formError{{Field: "cv", Message: "CV must be a PDF, Word (DOCX), OpenDocument (ODT) or plain text file."}}
	}
	var tooLarge *cvTooLargeError
	errors.As(err, &tooLarge)
	return []formError{{Field: "cv", Message: "CV must be at most " + sizeText(tooLarge.limit) + "."}}
}

// formErrorsOf is formErrors for the fields' validation error joined to
// a CV refusal, if there is one.
func formErrorsOf(err error, questions []application.Question) []formError {
	var verr *application.ValidationError
	if !errors.As(err, &verr) {
		return nil
	}
	return formErrors(verr, questions)
}

// withCVAgain tells the applicant, beside the file input, that a form
// shown again has lost its file (no browser lets a page fill a file input
// in): they must choose it again, even if it was fine.
func withCVAgain(view postingView, cv *upload) postingView {
	if cv == nil {
		return view
	}
	const again = "The file was not kept: please choose it again."
	for i, e := range view.Errors {
		if e.Field == "cv" {
			view.Errors[i].Message += " " + again
			return view
		}
	}
	view.Errors = append(view.Errors, formError{Field: "cv", Message: "Please choose your CV again: a form sent back cannot keep its file."})
	return view
}

// cvSum is the CV's part of the request fingerprint: its SHA-256, nil
// without a file.
func cvSum(f *application.File) []byte {
	if f == nil {
		return nil
	}
	return f.SHA256[:]
}

// sizeText writes a byte limit the way people read it: 5 MB, 64 KB.
func sizeText(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// contentDisposition names a download by RFC 6266: an ASCII fallback in
// filename (other characters, quotes and backslashes as "_") and the exact
// name, UTF-8 and percent-encoded by RFC 8187, in filename*.
func contentDisposition(name string) string {
	fallback := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			return '_'
		}
		return r
	}, name)
	var enc strings.Builder
	for _, b := range []byte(name) {
		if isAttrChar(b) {
			enc.WriteByte(b)
		} else {
			fmt.Fprintf(&enc, "%%%02X", b)
		}
	}
	return `attachment; filename="` + fallback + `"; filename*=UTF-8''` + enc.String()
}

// isAttrChar is RFC 8187's attr-char: what filename* may hold unencoded.
func isAttrChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", b) >= 0
}

// adminCVJSON is the admin view of an application's CV, without its bytes.
type adminCVJSON struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

func adminCV(f *application.FileInfo) *adminCVJSON {
	if f == nil {
		return nil
	}
	return &adminCVJSON{Filename: f.Filename, ContentType: f.ContentType, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256)}
}

// handleAdminCV answers an application's CV: its bytes with the content
// type recognised at upload, as an attachment no browser may sniff into
// something else. The download is audited (applications.cv_download); an
// application without a CV is 404.
func handleAdminCV(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, err := store.ApplicationCV(c.Request().Context(), callerOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		h := c.Response().Header()
		// SafeName again: a name stored before it tied the extension to
		// the content is downloaded by today's rule too.
		h.Set(echo.HeaderContentDisposition, contentDisposition(cvfile.SafeName(f.Filename, f.ContentType)))
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		return c.Blob(http.StatusOK, f.ContentType, f.Content)
	}
}

package mail

import (
	"bytes"
	"embed"
	"errors"
	htmltemplate "html/template"
	"net/url"
	texttemplate "text/template"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/statustoken"
)

//go:embed templates
var templates embed.FS

var (
	textTmpl = texttemplate.Must(texttemplate.ParseFS(templates, "templates/confirmation.txt.tmpl"))
	// html/template escapes everything the applicant typed.
	htmlTmpl = htmltemplate.Must(htmltemplate.ParseFS(templates, "templates/confirmation.html.tmpl"))
)

// Message is a rendered email, ready to send.
type Message struct {
	MessageID string // without angle brackets
	ToName    string
	ToAddress string
	Subject   string
	Text      string
	HTML      string
	// AlsoTo are further recipients (the weekly report's), by address.
	AlsoTo []string
}

// MessageID is the confirmation email's Message-ID for an application: the
// same on every attempt, so a duplicate delivered after a crash is
// recognisably the same message.
func MessageID(applicationID, domain string) string {
	return "confirmation." + applicationID + "@" + domain
}

// StatusPageURL is the link to an application's status page on the public
// site: the page intake-api serves at /applications/{id}?token=…, where its
// form also redirects to.
func StatusPageURL(publicURL *url.URL, keys statustoken.Keys, applicationID string) string {
	u := *publicURL
	u.Path = publicURL.Path + "/applications/" + applicationID
	u.RawQuery = url.Values{"token": {keys.Derive(applicationID)}}.Encode()
	return u.String()
}

// Confirmation renders the confirmation email for c, which must carry its
// StatusURL.
func Confirmation(c application.Confirmation, domain string) (Message, error) {
	if c.StatusURL == "" {
		return Message{}, errors.New("confirmation without a status link")
	}
	data := struct {
		FullName     string
		PostingTitle string
		ReceivedAt   string
		Reference    string
		StatusURL    string
		Employer     application.Employer
	}{
		FullName:     c.FullName,
		PostingTitle: c.PostingTitle,
		ReceivedAt:   c.ReceivedAt.UTC().Format("2 January 2006 at 15:04 UTC"),
		Reference:    application.Reference(c.ApplicationID),
		StatusURL:    c.StatusURL,
		Employer:     c.Employer,
	}
	if data.Employer.Name == "" {
		return Message{}, errors.New("confirmation without an employer's name")
	}
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, data); err != nil {
		return Message{}, err
	}
	if err := htmlTmpl.Execute(&html, data); err != nil {
		return Message{}, err
	}
	return Message{
		MessageID: MessageID(c.ApplicationID, domain),
		ToName:    c.FullName,
		ToAddress: c.Email,
		Subject:   "We received your application: " + c.PostingTitle,
		Text:      text.String(),
		HTML:      html.String(),
	}, nil
}

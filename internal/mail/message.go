package mail

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	texttemplate "text/template"

	"github.com/intake/intake/internal/application"
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
}

// MessageID is the confirmation email's Message-ID for an application: the
// same on every attempt, so a duplicate delivered after a crash is
// recognisably the same message.
func MessageID(applicationID, domain string) string {
	return "confirmation." + applicationID + "@" + domain
}

// Confirmation renders the confirmation email for c.
func Confirmation(c application.Confirmation, domain string) (Message, error) {
	data := struct {
		FullName      string
		PostingTitle  string
		ReceivedAt    string
		ApplicationID string
	}{
		FullName:      c.FullName,
		PostingTitle:  c.PostingTitle,
		ReceivedAt:    c.ReceivedAt.UTC().Format("2 January 2006 at 15:04 UTC"),
		ApplicationID: c.ApplicationID,
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

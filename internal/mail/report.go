package mail

import (
	"bytes"
	"errors"
	htmltemplate "html/template"
	"strconv"
	texttemplate "text/template"

	"github.com/intake/intake/internal/application"
)

var (
	reportFuncs    = map[string]any{"seconds": seconds}
	reportTextTmpl = texttemplate.Must(texttemplate.New("report.txt.tmpl").Funcs(reportFuncs).ParseFS(templates, "templates/report.txt.tmpl"))
	reportHTMLTmpl = htmltemplate.Must(htmltemplate.New("report.html.tmpl").Funcs(reportFuncs).ParseFS(templates, "templates/report.html.tmpl"))
)

// ReportMessageID is the weekly report email's Message-ID: one per week, so
// a copy sent again after a crash is recognisably the same message.
func ReportMessageID(week, domain string) string {
	return "report." + week + "@" + domain
}

// Report renders the weekly report email of r to the addresses to (at
// least one), signed with the employer's name. It holds counts and slugs
// only.
func Report(r application.Report, employer application.Employer, to []string, domain string) (Message, error) {
	if len(to) == 0 {
		return Message{}, errors.New("report email without a recipient")
	}
	if employer.Name == "" {
		return Message{}, errors.New("report email without an employer's name")
	}
	data := struct {
		Report   application.Report
		From     string
		Until    string
		Employer application.Employer
	}{
		Report:   r,
		From:     r.From.UTC().Format("Monday 2 January 2006"),
		Until:    r.To.UTC().AddDate(0, 0, -1).Format("Sunday 2 January 2006"),
		Employer: employer,
	}
	var text, html bytes.Buffer
	if err := reportTextTmpl.Execute(&text, data); err != nil {
		return Message{}, err
	}
	if err := reportHTMLTmpl.Execute(&html, data); err != nil {
		return Message{}, err
	}
	return Message{
		MessageID: ReportMessageID(r.Week, domain),
		ToAddress: to[0],
		AlsoTo:    to[1:],
		Subject:   "Weekly report " + r.Week + ": " + strconv.Itoa(r.Totals.Received) + " applications",
		Text:      text.String(),
		HTML:      html.String(),
	}, nil
}

// seconds shows a percentile of the report, "-" when there is none.
func seconds(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 2, 64) + " s"
}

package mail_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
)

func fixedReport() application.Report {
	week, _ := application.ParseWeek("2026-W48")
	p50, p95 := 1.25, 4.5
	figures := application.ReportFigures{Received: 3, ConfirmationsSent: 2, ConfirmationsFailed: 1,
		AnalyticsRecorded: 3, EmailAcceptedP50: &p50, EmailAcceptedP95: &p95, Erasures: 1}
	return application.Report{
		Week: week.String(), From: week.Start(), To: week.End(), BuiltAt: time.Date(2026, 11, 30, 0, 5, 0, 0, time.UTC), Final: true,
		Postings: []application.PostingFigures{
			{Slug: "go-engineer", ReportFigures: figures},
			{Slug: "designer"},
		},
		Totals: figures,
	}
}

// The report email, text and HTML, against golden files; its Message-ID
// is the week's and every address gets it.
func TestReportGolden(t *testing.T) {
	t.Parallel()
	m, err := mail.Report(fixedReport(), application.Employer{Name: "Acme <Jobs>"}, []string{"ops@example.com", "lead@example.com"}, "intake.test")
	require.NoError(t, err)
	require.Equal(t, "report.2026-W48@intake.test", m.MessageID)
	require.Equal(t, "ops@example.com", m.ToAddress)
	require.Equal(t, []string{"lead@example.com"}, m.AlsoTo)
	require.Equal(t, "Weekly report 2026-W48: 3 applications", m.Subject)
	golden(t, "report.txt.golden", m.Text)
	golden(t, "report.html.golden", m.HTML)
	require.Contains(t, m.HTML, "Acme &lt;Jobs&gt;", "html/template escapes the employer's name")
}

func TestReportNeedsARecipientAndASignature(t *testing.T) {
	t.Parallel()
	_, err := mail.Report(fixedReport(), application.Employer{Name: "Acme"}, nil, "intake.test")
	require.Error(t, err)
	_, err = mail.Report(fixedReport(), application.Employer{}, []string{"ops@example.com"}, "intake.test")
	require.Error(t, err)
}

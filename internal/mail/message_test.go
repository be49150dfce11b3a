package mail_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current templates")

const testDomain = "intake.test"

// fixedConfirmation is the application every golden file is rendered from.
// ReceivedAt is deliberately not in UTC: the email must say the UTC time.
func fixedConfirmation() application.Confirmation {
	return application.Confirmation{
		ApplicationID: "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e",
		FullName:      "Ada Lovelace",
		Email:         "ada@example.com",
		ReceivedAt:    time.Date(2026, time.March, 14, 10, 26, 53, 0, time.FixedZone("CET", 3600)),
		PostingSlug:   "backend-engineer",
		PostingTitle:  "Backend Engineer",
		State:         application.EmailQueued,
	}
}

// golden compares got with testdata/name, rewriting the file first when
// the test runs with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	require.Equal(t, string(want), got, "%s differs; run go test -update if the change is intended", path)
}

func TestConfirmationGolden(t *testing.T) {
	t.Parallel()

	m, err := mail.Confirmation(fixedConfirmation(), testDomain)
	require.NoError(t, err)

	t.Run("Text", func(t *testing.T) {
		t.Parallel()
		golden(t, "confirmation.txt.golden", m.Text)
	})
	t.Run("HTML", func(t *testing.T) {
		t.Parallel()
		golden(t, "confirmation.html.golden", m.HTML)
	})
}

func TestConfirmationFields(t *testing.T) {
	t.Parallel()

	c := fixedConfirmation()
	m, err := mail.Confirmation(c, testDomain)
	require.NoError(t, err)

	require.Equal(t, "We received your application: Backend Engineer", m.Subject)
	require.Equal(t, "Ada Lovelace", m.ToName)
	require.Equal(t, "ada@example.com", m.ToAddress)
	// 10:26 CET is 09:26 UTC, and both bodies say so.
	require.Contains(t, m.Text, "14 March 2026 at 09:26 UTC")
	require.Contains(t, m.HTML, "14 March 2026 at 09:26 UTC")
	require.Contains(t, m.Text, c.ApplicationID)
	require.Contains(t, m.HTML, c.ApplicationID)
	// The address is where the email goes, never what it says.
	require.NotContains(t, m.Text, c.Email)
	require.NotContains(t, m.HTML, c.Email)
}

func TestConfirmationMessageIDIsDeterministic(t *testing.T) {
	t.Parallel()

	c := fixedConfirmation()
	first, err := mail.Confirmation(c, testDomain)
	require.NoError(t, err)
	second, err := mail.Confirmation(c, testDomain)
	require.NoError(t, err)

	want := "confirmation." + c.ApplicationID + "@" + testDomain
	require.Equal(t, want, first.MessageID)
	require.Equal(t, first.MessageID, second.MessageID)
	require.Equal(t, want, mail.MessageID(c.ApplicationID, testDomain))
	// Two renders are the same message, byte for byte.
	require.Equal(t, first, second)

	other := c
	other.ApplicationID = "0190f3a2-7c4e-7b1a-9d2e-000000000000"
	third, err := mail.Confirmation(other, testDomain)
	require.NoError(t, err)
	require.NotEqual(t, first.MessageID, third.MessageID)
}

func TestConfirmationHTMLEscapesApplicantInput(t *testing.T) {
	t.Parallel()

	const hostile = `<script>alert(1)</script> "quotes" & ampersands`
	c := fixedConfirmation()
	c.FullName = hostile
	c.PostingTitle = hostile
	m, err := mail.Confirmation(c, testDomain)
	require.NoError(t, err)

	golden(t, "confirmation_escaped.html.golden", m.HTML)

	require.NotContains(t, m.HTML, "<script")
	require.NotContains(t, m.HTML, "</script")
	require.NotContains(t, m.HTML, `"quotes"`)
	require.NotContains(t, m.HTML, "& ampersands")
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt; &#34;quotes&#34; &amp; ampersands"
	require.Equal(t, 2, strings.Count(m.HTML, escaped), "both the name and the title appear escaped")

	// The text part is text/plain: it carries the input as typed, and
	// nothing reads it as markup.
	require.Contains(t, m.Text, "Hello "+hostile+",")
	require.Equal(t, "We received your application: "+hostile, m.Subject)
}

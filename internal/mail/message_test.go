package mail_test

import (
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/statustoken"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current templates")

const testDomain = "intake.test"

// testKeys derive the status tokens of the golden files.
func testKeys() statustoken.Keys {
	keys, err := statustoken.NewKeys([]byte("mail golden files status secret!"), nil)
	if err != nil {
		panic(err)
	}
	return keys
}

// publicURL is INTAKE_PUBLIC_URL with a path, as behind a reverse proxy.
var publicURL = &url.URL{Scheme: "https", Host: "jobs.example.com", Path: "/careers"}

// fixedConfirmation is the application every golden file is rendered from.
// ReceivedAt is deliberately not in UTC: the email must say the UTC time.
func fixedConfirmation() application.Confirmation {
	const id = "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"
	return application.Confirmation{
		ApplicationID: id,
		FullName:      "Ada Lovelace",
		Email:         "ada@example.com",
		ReceivedAt:    time.Date(2026, time.March, 14, 10, 26, 53, 0, time.FixedZone("CET", 3600)),
		PostingSlug:   "backend-engineer",
		PostingTitle:  "Backend Engineer",
		StatusURL:     mail.StatusPageURL(publicURL, testKeys(), id),
		Employer:      application.Employer{Name: "Example Ltd", Contact: "jobs@example.com"},
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
	require.Contains(t, m.Text, "\n"+c.StatusURL+"\n", "the text part has the link on a line of its own")
	require.Contains(t, m.HTML, `<a href="`+c.StatusURL+`"`)
	// The address is where the email goes, never what it says.
	require.NotContains(t, m.Text, c.Email)
	require.NotContains(t, m.HTML, c.Email)
}

func TestStatusPageURL(t *testing.T) {
	t.Parallel()
	const id = "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"
	link, err := url.Parse(mail.StatusPageURL(publicURL, testKeys(), id))
	require.NoError(t, err)
	require.Equal(t, "https://jobs.example.com/careers/applications/"+id, link.Scheme+"://"+link.Host+link.Path)
	require.True(t, testKeys().Verify(id, link.Query().Get("token")), "the link carries the application's token")
	require.Equal(t, []string{"token"}, keys(link.Query()))
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

func TestConfirmationRequiresStatusURL(t *testing.T) {
	t.Parallel()
	c := fixedConfirmation()
	c.StatusURL = ""
	_, err := mail.Confirmation(c, testDomain)
	require.ErrorContains(t, err, "status link")
}

// The link goes through html/template's URL escaping like everything else.
func TestConfirmationHTMLEscapesStatusURL(t *testing.T) {
	t.Parallel()
	c := fixedConfirmation()
	c.StatusURL = `javascript:alert(1)`
	m, err := mail.Confirmation(c, testDomain)
	require.NoError(t, err)
	require.NotContains(t, m.HTML, "javascript:")

	c.StatusURL = `https://jobs.example.com/a?token=x"><script>alert(1)</script>`
	m, err = mail.Confirmation(c, testDomain)
	require.NoError(t, err)
	require.NotContains(t, m.HTML, "<script")
	require.NotContains(t, m.HTML, `token=x"`)
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

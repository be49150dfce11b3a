package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/mail"
)

// axeSource is axe-core's script (npm axe-core). INTAKE_AXE_JS names it;
// otherwise it is looked for where .ci/run installs it.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("INTAKE_AXE_JS")
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".cache", "intake-npm", "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("the accessibility audit needs axe-core at %s (npm install --prefix ~/.cache/intake-npm axe-core, or set INTAKE_AXE_JS): %v", path, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return string(src)
}

// axeViolation is one rule axe found broken, with where.
type axeViolation struct {
	ID    string `json:"id"`
	Help  string `json:"help"`
	Nodes []struct {
		Target []string `json:"target"`
	} `json:"nodes"`
}

// requireAccessible injects axe-core into the current page, runs the WCAG
// 2.1 A and AA rules and fails the test on any violation, naming the page.
func (b *bundle) requireAccessible(axe, page string) {
	b.t.Helper()
	eval[chromedp.Void](b, axe)
	out := run(b, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, resultTypes: ["violations"]})
		.then(r => JSON.stringify(r.violations))`, func(p *runtime.EvaluateParams) { awaitPromise := true; p.AwaitPromise = &awaitPromise }))
	var violations []axeViolation
	require.NoError(b.t, json.Unmarshal([]byte(out), &violations))
	var lines []string
	for _, v := range violations {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, strings.Join(n.Target, " "))
		}
		lines = append(lines, fmt.Sprintf("%s (%s) at %s", v.ID, v.Help, strings.Join(where, ", ")))
	}
	require.Empty(b.t, lines, "%s: WCAG 2.1 AA violations", page)
}

// Every applicant page passes axe-core's WCAG 2.1 AA rules: the list, the
// posting, the form with errors, the duplicate notice, the status page in
// each state, 404 and the closed posting's 410.
func TestPagesPassTheAccessibilityAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	axe := axeSource(t)
	ctx := context.Background()

	b.do(chromedp.Navigate(b.api.URL + "/"))
	b.requireAccessible(axe, "home")

	b.do(chromedp.Navigate(b.api.URL + "/jobs/" + b.slug))
	b.requireAccessible(axe, "posting")

	b.fill(applicant{FullName: "Ada", Email: "not-an-address", Links: "ftp://x\njavascript:alert(1)"})
	b.submit()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".error-summary")))
	require.Equal(t, "error-summary", eval[string](b, `document.activeElement.className`),
		"after a failed submit, focus is on the error summary, not left on <body>")
	require.Equal(t, 2, eval[int](b, `document.querySelectorAll(".error-summary li").length`),
		"email and the links box: both named")
	require.Contains(t, eval[string](b, `document.getElementById("links-error").textContent`), "Link 2",
		"every bad link is named, not only the first")
	b.requireAccessible(axe, "form with errors")

	b.do(chromedp.Navigate(b.api.URL + "/jobs/" + b.slug))
	b.fill(ada)
	b.submit()
	path, id := b.waitStatusPage()
	b.requireAccessible(axe, "status: queued")
	for _, state := range []string{"sending", "retrying", "sent", "failed"} {
		sentAt := "NULL"
		if state == "sent" {
			sentAt = "now()"
		}
		_, err := b.api.Pool.Exec(ctx, `INSERT INTO deliveries (application_id, state, attempts, sent_at) VALUES ($1, $2, 1, `+sentAt+`)
			ON CONFLICT (application_id) DO UPDATE SET state = $2, sent_at = `+sentAt, id, state)
		require.NoError(t, err)
		b.do(chromedp.Navigate(b.api.URL + path))
		b.requireAccessible(axe, "status: "+state)
	}

	b.do(chromedp.Navigate(b.api.URL + "/jobs/" + b.slug))
	b.fill(ada)
	b.submit()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".notice")))
	require.Zero(t, eval[int](b, `document.querySelectorAll("form.apply").length`), "no active form under the duplicate notice")
	require.Equal(t, "notice", eval[string](b, `document.activeElement.className`))
	b.requireAccessible(axe, "duplicate")

	b.do(chromedp.Navigate(b.api.URL + "/jobs/no-such-job"))
	b.requireAccessible(axe, "404")

	_, err := b.api.Pool.Exec(ctx, `UPDATE postings SET status = 'closed' WHERE slug = $1`, b.slug)
	require.NoError(t, err)
	b.do(chromedp.Navigate(b.api.URL + "/jobs/" + b.slug))
	b.requireAccessible(axe, "410 closed posting")
}

// The confirmation email's HTML part passes the same audit (mail clients
// render it as a page; lang, contrast and link text matter there too).
func TestConfirmationEmailPassesTheAccessibilityAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	axe := axeSource(t)
	msg, err := mail.Confirmation(application.Confirmation{
		ApplicationID: "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e",
		FullName:      "Ada Lovelace",
		Email:         "ada@example.com",
		ReceivedAt:    time.Date(2026, time.March, 14, 10, 26, 53, 0, time.UTC),
		PostingSlug:   b.slug,
		PostingTitle:  "Go engineer",
		StatusURL:     b.api.URL + "/applications/0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e?token=x",
		Employer:      application.Employer{Name: "Example Ltd", Contact: "jobs@example.com"},
	}, "intake.localhost")
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(msg.HTML))
	}))
	t.Cleanup(srv.Close)
	b.do(chromedp.Navigate(srv.URL))
	b.requireAccessible(axe, "confirmation email (HTML)")
}

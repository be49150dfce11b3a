package browsertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/devmail"
	"github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/testkit"
)

// widths are the viewports every page is laid out and photographed at: a
// small phone and a laptop.
var widths = []int{375, 1280}

// screenshotDir is where this run's screenshots go: a new directory under
// INTAKE_SCREENSHOTS_DIR, or under intake-screenshots in the system's
// temporary directory. It is kept after the tests, so the pages can be
// looked at; its path is logged.
var screenshotDir = sync.OnceValues(func() (string, error) {
	base := os.Getenv("INTAKE_SCREENSHOTS_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), "intake-screenshots")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, time.Now().UTC().Format("20060102-150405-"))
})

func shots(t *testing.T) string {
	t.Helper()
	dir, err := screenshotDir()
	require.NoError(t, err, "screenshot directory (INTAKE_SCREENSHOTS_DIR)")
	t.Logf("screenshots: %s", dir)
	return dir
}

// layoutBudget bounds what a layout test does in its browser: every page at
// two widths, each photographed, is more than actionTimeout allows on a
// loaded machine.
const layoutBudget = 3 * time.Minute

// withBudget is the tab of ctx under a budget of its own instead of
// actionTimeout (the browser still closes when the test ends).
func withBudget(t *testing.T, tab context.Context, budget time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tab), budget)
	t.Cleanup(cancel)
	return ctx
}

// minTarget is the smallest height, in CSS pixels, of a control a thumb
// must hit on a phone (WCAG 2.5.5 asks 44).
const minTarget = 44

// requireTapTargets fails if an element matching selector on the page is
// less than minTarget high.
func (b *bundle) requireTapTargets(page, selector string) {
	b.t.Helper()
	small := eval[[]string](b, `Array.from(document.querySelectorAll(`+strconv.Quote(selector)+`))
		.filter(el => el.getBoundingClientRect().height < `+strconv.Itoa(minTarget)+`)
		.map(el => el.tagName.toLowerCase() + "#" + el.id + " " + el.textContent.trim().slice(0, 30) + " h=" + el.getBoundingClientRect().height)`)
	require.Empty(b.t, small, "%s: tap targets under %d px high", page, minTarget)
}

// Every applicant page at a phone's and a laptop's width: nothing scrolls
// sideways, what matters is on screen, the phone's tap targets are large
// enough; and a screenshot of each, for people to look at.
func TestLayoutAtPhoneAndDesktopWidths(t *testing.T) {
	t.Parallel()
	// The employer's logo, from a host of its own as a CDN would serve it.
	logo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(logoSVG))
	}))
	t.Cleanup(logo.Close)
	b := setupWith(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.Employer = application.Employer{Name: "Northwind Labs", LogoURL: logo.URL + "/logo.svg", Contact: "careers@northwind.example"}
	}})
	ctx := context.Background()
	b.api.CreatePosting(t, "product-designer")
	b.api.CreatePosting(t, "site-reliability-engineer")
	b.api.CreatePosting(t, "office-manager")
	b.api.CreatePosting(t, "old-role")
	_, err := b.api.Pool.Exec(ctx, `
		UPDATE postings SET description = 'Build the services that take in job applications: APIs in Go, data in PostgreSQL, jobs that must run exactly when they should.' || E'\n\n' ||
				'You will:' || E'\n' || '- design and run the API and its workers' || E'\n' || '- share on-call with four other engineers' || E'\n\n' ||
				'Read about us at https://example.com/team?ref=careerspage0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij'
			WHERE slug = 'go-engineer';
		UPDATE postings SET title = 'Site reliability engineer (Kubernetes, PostgreSQL, on-call one week in five)', team = 'Engineering', location = 'Remote (UTC−2 to UTC+3)' WHERE slug = 'site-reliability-engineer';
		UPDATE postings SET title = 'Product designer', team = 'Design', location = 'Lisbon' WHERE slug = 'product-designer';
		UPDATE postings SET title = 'Office manager', location = 'Berlin' WHERE slug = 'office-manager';
		UPDATE postings SET title = 'Data analyst', status = 'closed' WHERE slug = 'old-role'`)
	require.NoError(t, err)
	b.ctx = withBudget(t, b.ctx, layoutBudget)

	b.openPostingFromHome()
	b.fill(ada)
	b.submit()
	status, id := b.waitStatusPage()

	dir := shots(t)
	targets := `.postings a, .button, form.apply input:not([type=hidden]):not([type=checkbox]):not([type=radio]), form.apply select, form.apply textarea, form.apply button, .error-summary a`
	for _, width := range widths {
		b.do(chromedp.EmulateViewport(int64(width), 800))
		require.Equal(t, width, eval[int](b, `window.innerWidth`))
		check := func(page, shot string, selectors ...string) {
			t.Helper()
			b.checkLayout(page, selectors...)
			if width < 600 {
				b.requireTapTargets(page, targets)
			}
			b.screenshot(dir, shot, width)
		}

		b.do(chromedp.Navigate(b.api.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`ul.postings a`)))
		require.Equal(t, []string{"Design", "Engineering", "Other positions"},
			eval[[]string](b, `Array.from(document.querySelectorAll(".team-name")).map(h => h.textContent)`),
			"grouped by team, teams in order, the postings without one last")
		require.Equal(t, "Berlin or remote (EU)", run(b, chromedp.Text(chromedp.CSS(`a[href="/jobs/go-engineer"] .posting-location`))))
		require.True(t, eval[bool](b, `document.querySelector("header.site img.logo").naturalWidth > 0`), "the logo loaded under the page's policy")
		check("home", "home", "h1", ".lede", "ul.postings a", ".posting-location", "header.site img.logo")

		b.do(chromedp.Navigate(b.api.URL+"/jobs/"+b.slug), chromedp.WaitVisible(submitButton))
		require.Equal(t, []string{"Team: Engineering", "Location: Berlin or remote (EU)"},
			eval[[]string](b, `Array.from(document.querySelectorAll(".posting-meta > span")).map(s => s.textContent)`))
		require.Equal(t, 3, eval[int](b, `document.querySelectorAll(".description p").length`), "one paragraph per blank line")
		require.True(t, eval[bool](b, `(() => {
			const d = document.querySelector(".description"), probe = document.createElement("div");
			probe.style.width = "70ch";
			d.append(probe);
			const measure = probe.getBoundingClientRect().width;
			probe.remove();
			return d.getBoundingClientRect().width <= measure + 0.5;
		})()`), "the description's lines are at most 70 characters wide")
		check("posting", "posting", "form.apply", ".posting-meta", "#full_name", "#cover_letter", "#links", string(submitButton), ".description", ".jump .button")

		b.fill(applicant{FullName: "Grace Hopper", Email: "grace@", Links: "not a link"})
		b.submit()
		b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".error-summary")))
		require.Equal(t, []string{"rgb(185, 28, 28)", "rgb(185, 28, 28)"},
			eval[[]string](b, `["email", "links"].map(id => getComputedStyle(document.getElementById(id)).borderTopColor)`),
			"each bad field has the red border")
		check("posting with errors", "posting-errors", "form.apply", ".error-summary", "#email-error", "#links-error", string(submitButton))

		b.setDelivery(id, "queued")
		b.do(chromedp.Navigate(b.api.URL+status), chromedp.WaitVisible(chromedp.CSS(`.email-state`)))
		require.Contains(t, run(b, chromedp.Text(chromedp.CSS(`.next-steps`))), "within a few minutes", "says how long")
		require.Contains(t, run(b, chromedp.Text(chromedp.CSS(`.reference`))), "careers@northwind.example", "says whom to write to")
		check("status: queued", "status-queued", "h1", ".email-state", ".next-steps", ".reference")

		b.setDelivery(id, "sent")
		b.do(chromedp.Navigate(b.api.URL+status), chromedp.WaitVisible(chromedp.CSS(`.email-state.state-sent`)))
		check("status: sent", "status-sent", "h1", ".email-state", ".next-steps")

		b.do(chromedp.Navigate(b.api.URL+"/jobs/no-such-job"), chromedp.WaitVisible(chromedp.CSS("h1")))
		require.Equal(t, "Page not found", run(b, chromedp.Text(chromedp.CSS("h1"))))
		check("404", "404", "h1", ".message .button")

		b.do(chromedp.Navigate(b.api.URL+"/jobs/old-role"), chromedp.WaitVisible(chromedp.CSS("h1")))
		require.Equal(t, "This position is closed", run(b, chromedp.Text(chromedp.CSS("h1"))))
		check("410", "410", "h1", ".message .button")
	}
}

// logoSVG is a made-up employer's logo: a mark and the name.
const logoSVG = `<svg xmlns="http://www.w3.org/2000/svg" width="240" height="48" viewBox="0 0 240 48">
<rect width="48" height="48" rx="10" fill="#0f766e"/>
<path d="M14 34V14h4l12 13V14h4v20h-4L18 21v13z" fill="#fff"/>
<text x="60" y="32" font-family="sans-serif" font-size="22" font-weight="700" fill="#134e4a">Northwind Labs</text>
</svg>`

// setDelivery puts the application's confirmation email in state, as the
// worker would.
func (b *bundle) setDelivery(id, state string) {
	b.t.Helper()
	sentAt := "NULL"
	if state == "sent" {
		sentAt = "now()"
	}
	_, err := b.api.Pool.Exec(context.Background(), `INSERT INTO deliveries (application_id, state, attempts, sent_at) VALUES ($1, $2, 1, `+sentAt+`)
		ON CONFLICT (application_id) DO UPDATE SET state = $2, sent_at = `+sentAt, id, state)
	require.NoError(b.t, err)
}

// The dev mailbox (intakectl dev) at a phone's and a laptop's width, with a
// real confirmation email to a long address under a long subject: the list
// and the message page never scroll sideways; the message's text body
// scrolls inside its own box.
func TestMailboxLayout(t *testing.T) {
	t.Parallel()
	catcher, err := devmail.Start(&devmail.Opts{SMTPAddr: "127.0.0.1:0", MailboxAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, catcher.Close()) })

	sender, err := mail.NewSender(mail.SMTPConfig{
		Host: catcher.SMTPAddr().IP.String(), Port: catcher.SMTPAddr().Port, TLS: "none",
		From:    &netmail.Address{Name: "Northwind Labs careers", Address: "no-reply@careers.northwind-laboratories.example"},
		Timeout: 10 * time.Second,
	})
	require.NoError(t, err)
	id := "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"
	msg, err := mail.Confirmation(application.Confirmation{
		ApplicationID: id,
		FullName:      "Maximiliane Alexandra von Hohenzollern-Sigmaringen",
		Email:         "maximiliane.alexandra.von.hohenzollern-sigmaringen@applicants.example.com",
		ReceivedAt:    time.Date(2026, time.March, 14, 10, 26, 53, 0, time.UTC),
		PostingSlug:   "site-reliability-engineer",
		PostingTitle:  "Site reliability engineer (Kubernetes, PostgreSQL, on-call one week in five)",
		StatusURL:     "http://127.0.0.1:8080/applications/" + id + "?token=AbCdEfGhIjKlMnOpQrStUv",
		Employer:      application.Employer{Name: "Northwind Labs", Contact: "careers@northwind.example"},
	}, sender.Domain())
	require.NoError(t, err)
	require.NoError(t, sender.Send(context.Background(), msg))
	require.Len(t, catcher.Messages(), 1)

	b := &bundle{t: t, ctx: withBudget(t, startBrowser(t), layoutBudget), console: &consoleLog{}}
	axe := axeSource(t)
	dir := shots(t)
	for _, width := range widths {
		b.do(chromedp.EmulateViewport(int64(width), 800))
		b.do(chromedp.Navigate(catcher.MailboxURL()+"/"), chromedp.WaitVisible(chromedp.CSS("table a")))
		b.checkLayout("mailbox", "h1", "table a")
		b.requireAccessible(axe, "mailbox")
		b.screenshot(dir, "mailbox", width)

		href := eval[string](b, `document.querySelector("table a").href`)
		require.True(t, strings.HasSuffix(href, "/messages/1"), href)
		// Navigate, not click: it waits for the load event, which waits for
		// the HTML body's frame, so the screenshot shows it.
		b.do(chromedp.Navigate(href), chromedp.WaitVisible(chromedp.CSS("pre")))
		b.checkLayout("mailbox message", "h1", "pre", "iframe")
		b.requireAccessible(axe, "mailbox message")
		b.screenshot(dir, "mailbox-message", width)
	}
}

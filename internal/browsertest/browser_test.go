package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// chromiumFlags are the only switches these tests give Chromium. They are
// set one by one, not taken from chromedp.DefaultExecAllocatorOptions, and
// not through helpers such as chromedp.Headless (which adds
// --hide-scrollbars and --mute-audio) or chromedp.DisableGPU (which adds
// --enable-unsafe-swiftshader). chromedp itself adds only
// --remote-debugging-pipe, its transport, and the first URL, about:blank.
// A fresh --user-data-dir is added per test.
var chromiumFlags = []string{
	"headless",
	"no-sandbox",
	"disable-gpu",
	"disable-background-networking",
	"disable-component-update",
	"disable-sync",
	"no-first-run",
}

// actionTimeout bounds everything one test does in its browser, so a page
// that never shows what a test waits for fails the test instead of hanging.
const actionTimeout = 40 * time.Second

// bundle is what a browser test works with: the API over its own database
// with one open posting, and a tab in a Chromium of its own.
type bundle struct {
	t       *testing.T
	api     *testkit.API
	slug    string
	ctx     context.Context // the tab; every action runs under actionTimeout
	console *consoleLog
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, nil)
}

// setupWith is setup with the API started with opts.
func setupWith(t *testing.T, opts *testkit.APIOpts) *bundle {
	t.Helper()
	api := testkit.StartAPI(t, opts)
	slug := api.CreatePosting(t, "go-engineer")
	_, err := api.Pool.Exec(context.Background(),
		`UPDATE postings SET title = 'Go engineer', team = 'Engineering', location = 'Berlin or remote (EU)', description = $2 WHERE slug = $1`, slug,
		"Build the services that take in job applications.\n"+
			// A long word with no place to break it: the page must wrap it anyway.
			"Read about us at https://example.com/team?ref=careerspage0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij")
	require.NoError(t, err)

	b := &bundle{t: t, api: api, slug: slug, console: &consoleLog{}}
	b.ctx = startBrowser(t)
	require.NoError(t, chromedp.Listen(b.ctx, b.console.record))
	return b
}

// startBrowser starts a headless Chromium with chromiumFlags and a fresh
// profile, and returns the context of its first tab. The browser is closed
// (and waited for) when the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		msg := fmt.Sprintf("browser tests need Chromium at %s (Debian: apt-get install chromium): %v", chromiumPath, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromiumPath)}
	for _, f := range chromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	// TempDir first: cleanups run last-in first-out, so the browser is
	// gone before its profile directory is removed.
	opts = append(opts, chromedp.UserDataDir(t.TempDir()))

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process to exit
	})
	// The first Do starts the browser; it must not run under a timeout, or
	// the timeout would close the browser (chromedp docs, "Set a timeout for
	// one action").
	require.NoError(t, chromedp.Do(browserCtx), "start Chromium")
	// Debian's /usr/bin/chromium is a script that adds the switches of
	// /etc/chromium.d before these; log the whole command line.
	pid := chromedp.FromContext(browserCtx).Browser.Process().Pid
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		for _, f := range chromiumFlags {
			require.Contains(t, args, "--"+f)
		}
		t.Logf("Chromium: %s", strings.Join(args, " "))
	}

	ctx, cancel := context.WithTimeout(browserCtx, actionTimeout)
	t.Cleanup(cancel)
	return ctx
}

// consoleLog keeps what the page wrote to its console: console API calls,
// uncaught exceptions and browser log entries (CSP violations are "error"
// entries of the browser log).
type consoleLog struct {
	mu       sync.Mutex
	messages []string
	problems []string // errors, warnings and exceptions
}

// record runs in chromedp's event loop: it must be quick and send no command.
func (c *consoleLog) record(ev any) {
	var msg string
	problem := false
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
		problem = ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning ||
			ev.Type == runtime.ConsoleAPICalledTypeAssert
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "exception: " + d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		problem = true
	case *log.EventEntryAdded:
		e := ev.Entry
		msg = "log." + string(e.Level) + " (" + string(e.Source) + "): " + e.Text + " " + e.URL
		problem = e.Level == log.EntryLevelError || e.Level == log.EntryLevelWarning
	default:
		return
	}
	if strings.Contains(msg, "Content Security Policy") {
		problem = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.messages = append(c.messages, msg)
	if problem {
		c.problems = append(c.problems, msg)
	}
}

func (c *consoleLog) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

func (c *consoleLog) Messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.messages)
}

// do runs actions in the tab and fails the test on the first error.
func (b *bundle) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...))
}

// run runs one action in the tab and returns its value.
func run[T any](b *bundle, action chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, action)
	require.NoError(b.t, err)
	return v
}

// eval evaluates a JavaScript expression in the page (through DevTools,
// so it works even where the page's own scripts are disabled or blocked).
func eval[T any](b *bundle, expr string) T {
	b.t.Helper()
	return run(b, chromedp.Evaluate[T](expr))
}

// applicant is what a test types into the form.
type applicant struct {
	FullName, Email, Phone, CoverLetter, Links string
}

var ada = applicant{
	FullName:    "Ada Lovelace",
	Email:       "ada@example.com",
	Phone:       "+44 20 7946 0000",
	CoverLetter: "I like engines.\nAnd poetry.",
	Links:       "https://example.com/ada\nhttps://github.com/ada",
}

// openPostingFromHome starts where an applicant starts: the list of open
// positions, then the posting's link.
func (b *bundle) openPostingFromHome() {
	b.t.Helper()
	b.do(
		chromedp.Navigate(b.api.URL+"/"),
		chromedp.Click(chromedp.CSS(`a[href="/jobs/`+b.slug+`"]`)),
		chromedp.WaitVisible(chromedp.ID("full_name")),
	)
	require.Equal(b.t, b.api.URL+"/jobs/"+b.slug, run(b, chromedp.Location()))
}

// fill types a into the form, field by field, as keystrokes.
func (b *bundle) fill(a applicant) {
	b.t.Helper()
	for _, f := range []struct{ id, value string }{
		{"full_name", a.FullName},
		{"email", a.Email},
		{"phone", a.Phone},
		{"cover_letter", a.CoverLetter},
		{"links", a.Links},
	} {
		if f.value != "" {
			b.do(chromedp.SendKeys(chromedp.ID(f.id), f.value))
		}
	}
}

const submitButton = chromedp.CSS(`form.apply button[type=submit]`)

var statusPageURL = regexp.MustCompile(`^/applications/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\?token=[A-Za-z0-9_-]{22}$`)

// nextPage selects in a document that submit has not marked: the page that
// answers the form, not the form itself.
const nextPage = `html:not([data-test-submitted]) `

// submit marks the current document, then runs actions that send the
// form (a click by default).
func (b *bundle) submit(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	eval[chromedp.Void](b, `document.documentElement.setAttribute("data-test-submitted", "")`)
	if len(actions) == 0 {
		actions = append(actions, chromedp.Click(submitButton))
	}
	b.do(actions...)
}

// waitStatusPage waits for the status page and returns its URL (without
// the server's origin) and the application id in it. When the form comes
// back instead, it fails at once with what the form says.
func (b *bundle) waitStatusPage() (path, id string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + `:is(.email-state, .error-summary, .notice, main > h1 + p)`)))
	loc := run(b, chromedp.Location())
	path = strings.TrimPrefix(loc, b.api.URL)
	m := statusPageURL.FindStringSubmatch(path)
	if m == nil {
		b.t.Fatalf("expected the status page, got %s:\n%s", loc, run(b, chromedp.Text(chromedp.CSS("main"))))
	}
	require.Equal(b.t, "Application received", run(b, chromedp.Text(chromedp.CSS("h1"))))
	return path, m[1]
}

// stateText is the status page's sentence about the confirmation email.
func (b *bundle) stateText() string {
	b.t.Helper()
	return run(b, chromedp.Text(chromedp.CSS(`.email-state p`)))
}

// applications counts the applications in the database.
func (b *bundle) applications() int {
	b.t.Helper()
	return b.api.Count(b.t, "applications")
}

// applyPosts counts the form posts the server received, from its access log.
func (b *bundle) applyPosts() int {
	b.t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(b.api.Logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg, Method, Route string
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" &&
			line.Method == "POST" && line.Route == "/jobs/:slug/apply" {
			n++
		}
	}
	return n
}

// buttonCenter scrolls the submit button into view and returns its center
// in viewport coordinates. It reads the page through JavaScript only, so it
// also works on a page restored from the back-forward cache, which
// chromedp's DOM queries do not see.
func (b *bundle) buttonCenter() (x, y float64) {
	b.t.Helper()
	c := eval[struct{ X, Y float64 }](b, `(() => {
		const button = document.querySelector("form.apply button[type=submit]");
		button.scrollIntoView({block: "center"});
		const r = button.getBoundingClientRect();
		return {X: r.left + r.width / 2, Y: r.top + r.height / 2};
	})()`)
	return c.X, c.Y
}

// doubleClick is what a mouse sends for a double click: two full clicks,
// the second with click count 2. (chromedp.DoubleClick sends a single
// press and release with click count 2: one click event, which would not
// try to send the form twice.)
func doubleClick(x, y float64) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.MouseClickXY(x, y),
		chromedp.MouseClickXY(x, y, chromedp.ClickCount(2)),
	)
}

func TestApplyThroughTheForm(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.openPostingFromHome()
	require.Equal(t, "Go engineer", run(b, chromedp.Text(chromedp.CSS("h1"))))
	b.fill(ada)
	b.submit()

	path, id := b.waitStatusPage()
	require.Contains(t, b.stateText(), "queued and will be sent shortly")
	require.Equal(t, "email-state state-queued", run(b, chromedp.AttributeValue(chromedp.CSS(".email-state"), "class")).Value)
	require.Equal(t, 1, b.applications())

	require.Equal(t, ada, b.storedApplication(id), "the database holds what was typed")
	t.Logf("status page: %s", statusPageURL.ReplaceAllString(path, "/applications/$1?token=…"))
}

func TestDoubleClickSubmitsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.openPostingFromHome()
	b.fill(ada)
	// Hold the form's request in the browser, as a slow network does, so
	// the double click's second click comes while the first is in flight.
	// (Without that, Chromium itself drops a submission that comes before
	// the one it replaces has left, and the test could not tell whether
	// app.js guards the form.)
	held := b.holdRequests("*/jobs/" + b.slug + "/apply")
	// Count the submissions that go through: a listener on window runs
	// after app.js's on document, so it sees whether app.js stopped one.
	// The count goes to sessionStorage: while a navigation is pending,
	// Chromium answers no DevTools command in the page, so it is read on
	// the next page.
	eval[chromedp.Void](b, `sessionStorage.setItem("sent", "0");
		window.addEventListener("submit", e => {
			if (!e.defaultPrevented) sessionStorage.setItem("sent", +sessionStorage.getItem("sent") + 1);
		})`)

	x, y := b.buttonCenter()
	b.submit(chromedp.MouseClickXY(x, y))
	first := b.nextHeld(held)
	b.do(chromedp.MouseClickXY(x, y, chromedp.ClickCount(2)))
	_, err := chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: first})
	require.NoError(t, err, "the first request is still the one the browser waits for")

	path, _ := b.waitStatusPage()
	require.Equal(t, "1", eval[string](b, `sessionStorage.getItem("sent")`), "the second click sent nothing")
	require.Empty(t, held, "the browser asked for nothing more")
	require.Equal(t, 1, b.applications())
	require.Equal(t, 1, b.applyPosts())

	// Reloading the status page is a GET: still one application.
	b.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".email-state")))
	require.Equal(t, b.api.URL+path, run(b, chromedp.Location()))
	require.Equal(t, 1, b.applications())
}

// holdRequests pauses the browser's requests to URLs matching pattern and
// returns the ids of the paused requests as they come; continue each with
// fetch.ContinueRequest.
func (b *bundle) holdRequests(pattern string) chan fetch.RequestID {
	b.t.Helper()
	held := make(chan fetch.RequestID, 16)
	require.NoError(b.t, chromedp.Listen(b.ctx, func(ev any) {
		if ev, ok := ev.(*fetch.EventRequestPaused); ok {
			held <- ev.RequestID
		}
	}))
	_, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: pattern, RequestStage: fetch.RequestStageRequest}},
	})
	require.NoError(b.t, err)
	return held
}

// nextHeld waits for the next request that holdRequests paused.
func (b *bundle) nextHeld(held chan fetch.RequestID) fetch.RequestID {
	b.t.Helper()
	select {
	case id := <-held:
		return id
	case <-b.ctx.Done():
		b.t.Fatalf("no request was held: %v", b.ctx.Err())
		return ""
	}
}

func TestDoubleSubmitWithoutJavaScript(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
	require.NoError(t, err)

	b.openPostingFromHome()
	b.fill(ada)
	key := b.idempotencyKey()

	// Two quick clicks: with no script to disable the button, the browser
	// posts the form twice, with the same idempotency key.
	b.submit(doubleClick(b.buttonCenter()))
	first, _ := b.waitStatusPage()
	require.Equal(t, 1, b.applications())
	posts := b.applyPosts()
	require.GreaterOrEqual(t, posts, 1)
	t.Logf("the double click posted the form %d times", posts)

	// Back to the form and send it again: the page comes back with the
	// same hidden idempotency key, so the server replays the first answer.
	// chromedp's DOM queries do not see a page restored from the
	// back-forward cache, so this part reads the page with JavaScript.
	b.back()
	b.waitJS(`location.pathname === "/jobs/` + b.slug + `" && document.getElementById("full_name") !== null`)
	require.Equal(t, key, eval[string](b, `document.querySelector("input[name=idempotency_key]").value`),
		"the form came back with its idempotency key")
	require.Equal(t, ada.Email, eval[string](b, `document.getElementById("email").value`), "and with what was typed")
	b.submit(chromedp.MouseClickXY(b.buttonCenter()))
	second, _ := b.waitStatusPage()

	require.Equal(t, first, second, "the resubmitted form lands on the same status page")
	require.Equal(t, 1, b.applications())
	// Logged before its answer left, so counted by now.
	require.Greater(t, b.applyPosts(), posts, "the server did receive the form again")
}

func TestValidationErrorsBesideTheFields(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.openPostingFromHome()
	typed := ada
	typed.Email = "ada@example"
	typed.Links = "https://example.com/ada\njavascript:alert(1)"
	b.fill(typed)
	b.submit()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".error-summary")))

	require.Equal(t, b.api.URL+"/jobs/"+b.slug+"/apply", run(b, chromedp.Location()), "the form is re-rendered, not redirected")
	require.Equal(t, 0, b.applications())

	// A message beside each bad field, inside the field's own block, and
	// nothing beside the good ones.
	type fieldState struct {
		Message     string
		Beside      bool
		Invalid     string
		DescribedBy string
	}
	fields := eval[map[string]fieldState](b, `Object.fromEntries(
		["full_name", "email", "phone", "cover_letter", "links"].map(id => {
			const input = document.getElementById(id);
			const msg = document.getElementById(id + "-error");
			return [id, {
				Message: msg ? msg.textContent : "",
				Beside: !!msg && msg.classList.contains("field-error") && msg.parentElement === input.parentElement,
				Invalid: input.getAttribute("aria-invalid") || "",
				DescribedBy: input.getAttribute("aria-describedby") || "",
			}];
		}))`)
	require.Equal(t, map[string]fieldState{
		"full_name":    {},
		"email":        {Message: "Email must be an email address like name@example.com.", Beside: true, Invalid: "true", DescribedBy: "email-error"},
		"phone":        {},
		"cover_letter": {},
		"links":        {Message: "Link 2 must be an http or https URL.", Beside: true, Invalid: "true", DescribedBy: "links-error"},
	}, fields)
	require.Equal(t, 2, eval[int](b, `document.querySelectorAll(".field-error").length`))

	// The summary links to each field.
	summary := eval[[]struct{ Href, Text, Target string }](b, `
		Array.from(document.querySelectorAll(".error-summary a")).map(a => {
			const target = document.getElementById(a.getAttribute("href").slice(1));
			return {Href: a.getAttribute("href"), Text: a.textContent, Target: target ? target.tagName : ""};
		})`)
	require.Equal(t, []struct{ Href, Text, Target string }{
		{"#email", "Email must be an email address like name@example.com.", "INPUT"},
		{"#links", "Link 2 must be an http or https URL.", "TEXTAREA"},
	}, summary)
	require.Equal(t, "Please correct 2 fields", run(b, chromedp.Text(chromedp.ID("error-summary-title"))))
	b.do(chromedp.Click(chromedp.CSS(`.error-summary a[href="#links"]`)))
	require.Equal(t, "#links", eval[string](b, `location.hash`))

	// What was typed is still there.
	for id, want := range map[string]string{
		"full_name": typed.FullName, "email": typed.Email, "phone": typed.Phone,
		"cover_letter": typed.CoverLetter, "links": typed.Links,
	} {
		require.Equal(t, want, run(b, chromedp.Value(chromedp.ID(id))), id)
	}

	// Fixing the fields and sending the same form again works.
	b.retype("email", ada.Email)
	b.retype("links", ada.Links)
	b.submit()
	b.waitStatusPage()
	require.Equal(t, 1, b.applications())
}

func TestKeyboardOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.openPostingFromHome()
	tab := kb.Tab
	b.do(
		chromedp.Focus(chromedp.ID("full_name")),
		chromedp.SendKeys(chromedp.ID("full_name"),
			ada.FullName+tab+ada.Email+tab+ada.Phone+tab+ada.CoverLetter+tab+ada.Links+tab),
	)
	require.Equal(t, "cv", eval[string](b, `document.activeElement.id`), "Tab from the links reaches the CV's file input")
	b.do(chromedp.KeyEvent(tab))
	require.Equal(t, "BUTTON", eval[string](b, `document.activeElement.tagName`), "Tab from the last field reaches the submit button")
	require.Equal(t, "Send application", eval[string](b, `document.activeElement.textContent`))
	b.submit(chromedp.KeyEvent(kb.Enter)) // on the focused button

	_, id := b.waitStatusPage()
	require.Equal(t, 1, b.applications())
	require.Equal(t, ada, b.storedApplication(id), "the tab order follows the form: every value landed in its field")
}

// retype replaces a field's value as a user does: select all, then type.
func (b *bundle) retype(id, value string) {
	b.t.Helper()
	b.do(
		chromedp.Focus(chromedp.ID(id)),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(kb.ModifierCtrl)),
		chromedp.SendKeys(chromedp.ID(id), value),
	)
	require.Equal(b.t, value, run(b, chromedp.Value(chromedp.ID(id))))
}

// idempotencyKey is the form's hidden idempotency key.
func (b *bundle) idempotencyKey() string {
	b.t.Helper()
	key := run(b, chromedp.Value(chromedp.CSS(`form.apply input[name=idempotency_key]`)))
	require.NotEmpty(b.t, key)
	return key
}

// back goes one step back in the tab's history, as the browser's back
// button does. (chromedp.NavigateBack waits for a load event, which a page
// restored from the back-forward cache never fires.)
func (b *bundle) back() {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		h, err := cdp.Call(ctx, t, page.GetNavigationHistory, cdp.Empty{})
		if err != nil {
			return err
		}
		if h.CurrentIndex < 1 {
			return fmt.Errorf("no page to go back to")
		}
		_, err = cdp.Call(ctx, t, page.NavigateToHistoryEntry,
			page.NavigateToHistoryEntryParams{EntryID: h.Entries[h.CurrentIndex-1].ID})
		return err
	}))
}

// waitJS waits until a JavaScript expression is true in the page. Unlike
// chromedp.Poll it does not use chromedp's record of the page's execution
// context, which a page restored from the back-forward cache leaves stale;
// and it keeps trying through navigations.
func (b *bundle) waitJS(expr string) {
	b.t.Helper()
	var lastErr error
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		lastErr = err
		select {
		case <-b.ctx.Done():
			b.t.Fatalf("waiting for %s: %v (last error: %v)", expr, b.ctx.Err(), lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitUntil polls a condition outside the browser.
func (b *bundle) waitUntil(cond func() bool, what string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storedApplication reads back what the database holds for id.
func (b *bundle) storedApplication(id string) applicant {
	b.t.Helper()
	var got applicant
	var links []string
	require.NoError(b.t, b.api.Pool.QueryRow(context.Background(),
		`SELECT full_name, email, coalesce(phone, ''), coalesce(cover_letter, ''), links FROM applications WHERE id = $1`, id).
		Scan(&got.FullName, &got.Email, &got.Phone, &got.CoverLetter, &links))
	got.Links = strings.Join(links, "\n")
	return got
}

func TestStatusPageMovesFromQueuedToSent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mailSrv := testkit.StartSMTP(t)

	// No worker yet: the application waits in the outbox, and the status
	// page says so and keeps looking (its script, every 5 s).
	b.openPostingFromHome()
	b.fill(ada)
	b.submit()
	_, id := b.waitStatusPage()
	require.Contains(t, b.stateText(), "queued and will be sent shortly")
	require.True(t, eval[bool](b, `document.querySelector(".email-state").hasAttribute("data-watch")`))
	require.Zero(t, eval[int](b, `document.querySelectorAll("meta[http-equiv=refresh]").length`), "no reloading under the reader's feet")
	eval[chromedp.Void](b, `document.body.setAttribute("data-test-same-document", "")`)

	// A worker comes; the page's script shows the email sent, in place.
	startWorker(t, b.api.DBURL, mailSrv)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`.email-state.state-sent`))),
		"the page never said sent; it says: %s", b.stateText())
	require.Equal(t, "Your confirmation email was sent. Check your inbox (and your spam folder).", b.stateText())
	require.False(t, eval[bool](b, `document.querySelector(".email-state").hasAttribute("data-watch")`),
		"a page that cannot change any more stops looking")
	require.True(t, eval[bool](b, `document.body.hasAttribute("data-test-same-document")`), "updated in place, not reloaded")
	require.Equal(t, "Attempts so far: 1.", run(b, chromedp.Text(chromedp.CSS(`.email-state p.muted`))))

	msgs := mailSrv.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, []string{ada.Email}, msgs[0].To)
	require.Equal(t, "confirmation."+id+"@intake.localhost", msgs[0].MessageID)

	// The email's link opens this status page: its path and token are the
	// API's own (its host is INTAKE_PUBLIC_URL, which the test server does
	// not listen on).
	for _, part := range []string{"text/plain", "text/html"} {
		link := emailStatusLink.FindString(msgs[0].Parts(t)[part])
		require.NotEmpty(t, link, "the %s part links to the status page", part)
		u, err := url.Parse(html.UnescapeString(link))
		require.NoError(t, err)
		require.Equal(t, "/applications/"+id, u.Path, part)
		b.do(chromedp.Navigate(b.api.URL+"/"), chromedp.Navigate(b.api.URL+u.RequestURI()),
			chromedp.WaitVisible(chromedp.CSS(`.email-state.state-sent`)))
		require.Equal(t, "Application received", run(b, chromedp.Text(chromedp.CSS("h1"))), part)
	}
}

// emailStatusLink finds the status page's address in a confirmation email.
var emailStatusLink = regexp.MustCompile(`https?://[^\s"<>]+/applications/[0-9a-f-]{36}\?token=[^\s"<>]+`)

// A cover letter as long as the page's maxlength allows, with line breaks,
// is accepted: the browser counts a line break as one character but sends
// it as CRLF.
func TestCoverLetterAtMaxLength(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.openPostingFromHome()
	b.fill(applicant{FullName: ada.FullName, Email: ada.Email})
	letter := strings.Repeat("x", 100) + strings.Repeat("\n"+strings.Repeat("x", 99), 99)
	require.Len(t, letter, 10000)
	b.do(chromedp.SetValue(chromedp.ID("cover_letter"), letter))
	require.True(t, eval[bool](b, `(() => {
		const letter = document.getElementById("cover_letter");
		return letter.value.length === letter.maxLength && letter.maxLength === 10000;
	})()`), "the letter fills the textarea's maxlength exactly")
	// One more key: the browser refuses it.
	b.do(chromedp.SendKeys(chromedp.ID("cover_letter"), "y"))
	require.Equal(t, letter, run(b, chromedp.Value(chromedp.ID("cover_letter"))))

	b.submit()
	_, id := b.waitStatusPage()
	require.Equal(t, letter, b.storedApplication(id).CoverLetter)
}

// layout is what a page looks like at one viewport width.
type layout struct {
	// ClientWidth is InnerWidth less a vertical scrollbar: Chromium's
	// headless scrollbars take room, as on a desktop.
	ScrollWidth, InnerWidth, ClientWidth float64
	// Missing lists the selectors with no element; Hidden those with an
	// element of no size; Outside those reaching past the viewport's width.
	Missing, Hidden, Outside []string
	// Wide lists the elements wider than the viewport, for the message.
	Wide []string
}

// checkLayout fails unless the page has no horizontal scrolling and every
// selector's element is rendered within the viewport's width (less the
// vertical scrollbar, if there is one).
func (b *bundle) checkLayout(page string, selectors ...string) {
	b.t.Helper()
	sel, err := json.Marshal(selectors)
	require.NoError(b.t, err)
	l := eval[layout](b, `((selectors) => {
		const root = document.documentElement, vw = root.clientWidth;
		const out = {ScrollWidth: root.scrollWidth, InnerWidth: window.innerWidth, ClientWidth: vw, Missing: [], Hidden: [], Outside: [], Wide: []};
		for (const s of selectors) {
			const el = document.querySelector(s);
			if (!el) { out.Missing.push(s); continue; }
			const r = el.getBoundingClientRect();
			if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === "hidden") out.Hidden.push(s);
			if (r.left < 0 || r.right > vw) out.Outside.push(s);
		}
		for (const el of document.body.querySelectorAll("*")) {
			const r = el.getBoundingClientRect(), name = el.tagName.toLowerCase() + (el.className ? "." + el.className : "");
			if (r.right > vw + 0.5) out.Wide.push(name + " right=" + r.right);
			else if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible") out.Wide.push(name + " text overflows to " + (r.left + el.scrollWidth));
		}
		return out;
	})(`+string(sel)+`)`)
	require.LessOrEqual(b.t, l.ScrollWidth, l.InnerWidth, "%s: horizontal scrolling; too wide: %v", page, l.Wide)
	require.LessOrEqual(b.t, l.ScrollWidth, l.ClientWidth, "%s: horizontal scrolling beside the scrollbar; too wide: %v", page, l.Wide)
	require.Empty(b.t, l.Missing, "%s: missing", page)
	require.Empty(b.t, l.Hidden, "%s: not rendered", page)
	require.Empty(b.t, l.Outside, "%s: outside the viewport's width", page)
}

// screenshot saves a PNG of the whole page and returns its path. The
// viewport is made as tall as the page for it, then put back: Chromium's
// capture beyond the viewport (chromedp.FullScreenshot) leaves a sandboxed
// iframe, drawn by another process, blank.
func (b *bundle) screenshot(dir, name string, width int) string {
	b.t.Helper()
	size := eval[struct{ Height, Page int }](b, `({Height: window.innerHeight, Page: Math.ceil(document.documentElement.scrollHeight)})`)
	b.do(chromedp.EmulateViewport(int64(width), int64(size.Page)))
	buf := run(b, chromedp.CaptureScreenshot())
	b.do(chromedp.EmulateViewport(int64(width), int64(size.Height)))
	img, err := png.Decode(bytes.NewReader(buf))
	require.NoError(b.t, err)
	require.LessOrEqual(b.t, img.Bounds().Dx(), width, "%s: the whole page is no wider than the viewport", name)
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width))
	require.NoError(b.t, os.WriteFile(path, buf, 0o644))
	b.t.Logf("screenshot: %s", path)
	return path
}

func TestContentSecurityPolicyHolds(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// Every kind of page: the list, a posting, the form with errors, the
	// status page and an error page.
	b.openPostingFromHome()
	b.fill(applicant{FullName: ada.FullName, Email: "ada@"})
	b.submit()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".error-summary")))
	b.retype("email", ada.Email)
	b.submit()
	b.waitStatusPage()
	b.do(chromedp.Navigate(b.api.URL+"/jobs/no-such-job"), chromedp.WaitVisible(chromedp.CSS("h1")))
	require.Equal(t, "Page not found", run(b, chromedp.Text(chromedp.CSS("h1"))))

	// The stylesheet and the script loaded under the policy: the page is
	// styled, and app.js disables the button of a form being sent.
	b.do(chromedp.Navigate(b.api.URL+"/jobs/"+b.slug), chromedp.WaitVisible(submitButton))
	require.Equal(t, "rgb(246, 247, 249)", eval[string](b, `getComputedStyle(document.body).backgroundColor`))
	require.Equal(t, "Sending…", eval[string](b, `(() => {
		// Keep the form on the page: cancel the submission before app.js sees it.
		window.addEventListener("submit", e => e.preventDefault(), {capture: true});
		const button = document.querySelector("form.apply button[type=submit]");
		button.click();
		return button.disabled ? button.textContent : "not disabled";
	})()`))

	// Nothing was refused, nothing failed, but for the error statuses the
	// pages answer on purpose and the favicon Chromium asks for on its own
	// (the pages link none).
	expected := []string{
		"422 /jobs/" + b.slug + "/apply",
		"404 /jobs/no-such-job",
		"404 /favicon.ico",
	}
	require.Empty(t, b.unexpectedProblems(expected...), "console messages:\n%s", strings.Join(b.console.Messages(), "\n"))

	// The check can fail: an inline script, which the policy forbids, is
	// refused and reported.
	require.Equal(t, "blocked", eval[string](b, `(() => {
		const s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.body.append(s);
		return window.inlineRan ? "ran" : "blocked";
	})()`))
	b.waitUntil(func() bool { return len(b.unexpectedProblems(expected...)) > 0 }, "the CSP violation in the console")
	require.Contains(t, b.unexpectedProblems(expected...)[0], "Content Security Policy")
}

// unexpectedProblems are the console's errors and warnings, except the
// browser's notes that a document it loaded had an error status the test
// asked for, given as "status URL" pairs.
func (b *bundle) unexpectedProblems(expected ...string) []string {
	var out []string
next:
	for _, p := range b.console.Problems() {
		for _, e := range expected {
			status, url, _ := strings.Cut(e, " ")
			if strings.HasPrefix(p, "log.error (network): Failed to load resource: the server responded with a status of "+status+" ") &&
				strings.HasSuffix(p, " "+b.api.URL+url) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

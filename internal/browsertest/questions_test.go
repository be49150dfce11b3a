package browsertest

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// formQuestions has one question of each kind.
const formQuestions = `[
	{"key":"work_permit","label":"Do you have a work permit for the EU?","kind":"yes_no","required":true,"hint":"Answer no if you would need a visa."},
	{"key":"start","label":"When could you start?","kind":"short_text","required":true},
	{"key":"motivation","label":"Why this team?","kind":"long_text","required":false,"hint":"A few lines are enough."},
	{"key":"level","label":"Your level","kind":"choice","required":true,"choices":["Junior","Senior","Principal"]}
]`

// byID selects the element with id, which for a question holds a dot
// ("answers.start") that a #id selector would read as a class.
func byID(id string) chromedp.CSS {
	return chromedp.CSS(`[id="` + id + `"]`)
}

// A posting's questions are labelled, described and answered in the form;
// a required one left out is named in the error summary, which takes the
// focus, and what was typed and chosen is kept; both forms pass axe.
func TestQuestionsInTheForm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	axe := axeSource(t)
	_, err := b.api.Pool.Exec(t.Context(), `UPDATE postings SET questions = $2::jsonb WHERE slug = $1`, b.slug, formQuestions)
	require.NoError(t, err)

	b.openPostingFromHome()
	b.requireAccessible(axe, "form with questions")

	// Each question is labelled by its label (a legend for radio groups),
	// described by its hint, and marked optional where it is.
	type control struct {
		Tag, Type, Name, Label, DescribedBy string
		Required                            bool
	}
	controls := eval[map[string]control](b, `Object.fromEntries(
		["answers.work_permit", "answers.start", "answers.motivation", "answers.level"].map(id => {
			const el = document.getElementById(id);
			const fieldset = el.closest("fieldset");
			const label = fieldset ? fieldset.querySelector("legend") : document.querySelector('label[for="' + id + '"]');
			return [id, {
				Tag: el.tagName, Type: el.type, Name: el.name, Label: label ? label.textContent : "",
				DescribedBy: (fieldset || el).getAttribute("aria-describedby") || "", Required: el.required,
			}];
		}))`)
	require.Equal(t, map[string]control{
		"answers.work_permit": {Tag: "INPUT", Type: "radio", Name: "answers.work_permit", Label: "Do you have a work permit for the EU?",
			DescribedBy: "answers.work_permit-hint", Required: true},
		"answers.start": {Tag: "INPUT", Type: "text", Name: "answers.start", Label: "When could you start?", Required: true},
		"answers.motivation": {Tag: "TEXTAREA", Type: "textarea", Name: "answers.motivation", Label: "Why this team? (optional)",
			DescribedBy: "answers.motivation-hint"},
		"answers.level": {Tag: "INPUT", Type: "radio", Name: "answers.level", Label: "Your level", Required: true},
	}, controls)
	require.Equal(t, []string{"Yes", "No"}, eval[[]string](b,
		`Array.from(document.querySelectorAll('input[name="answers.work_permit"]')).map(i => document.querySelector('label[for="' + i.id + '"]').textContent)`))
	require.Equal(t, "Answer no if you would need a visa.", run(b, chromedp.Text(byID("answers.work_permit-hint"))))

	// Everything but the work permit.
	b.fill(ada)
	b.do(
		chromedp.SendKeys(byID("answers.start"), "In May"),
		chromedp.SendKeys(byID("answers.motivation"), "Engines.\nAnd looms."),
		chromedp.Click(byID("answers.level-2")),
	)
	b.submit()
	b.do(chromedp.WaitVisible(chromedp.CSS(nextPage + ".error-summary")))
	require.Equal(t, 0, b.applications())
	require.Equal(t, "error-summary", eval[string](b, `document.activeElement.className`),
		"after a failed submit, focus is on the error summary")
	summary := eval[[]struct{ Href, Text, Target string }](b, `
		Array.from(document.querySelectorAll(".error-summary a")).map(a => {
			const target = document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1)));
			return {Href: a.getAttribute("href"), Text: a.textContent, Target: target ? target.tagName + ":" + target.type : ""};
		})`)
	require.Equal(t, []struct{ Href, Text, Target string }{
		{"#answers.work_permit", "The answer to “Do you have a work permit for the EU?” is required.", "INPUT:radio"},
	}, summary, "the summary names the question and links to its first choice")
	require.Equal(t, "The answer to “Do you have a work permit for the EU?” is required.",
		run(b, chromedp.Text(byID("answers.work_permit-error"))))
	require.Equal(t, "answers.work_permit-hint answers.work_permit-error",
		eval[string](b, `document.getElementById("answers.work_permit").closest("fieldset").getAttribute("aria-describedby")`))
	b.requireAccessible(axe, "form with questions and errors")

	// What was typed and chosen is still there.
	require.Equal(t, "In May", run(b, chromedp.Value(byID("answers.start"))))
	require.Equal(t, "Engines.\nAnd looms.", run(b, chromedp.Value(byID("answers.motivation"))))
	require.Equal(t, "Senior", eval[string](b, `document.querySelector('input[name="answers.level"]:checked').value`))

	b.do(chromedp.Click(chromedp.CSS(`.error-summary a`)))
	require.Equal(t, "#answers.work_permit", eval[string](b, `location.hash`))
	b.do(chromedp.Click(byID("answers.work_permit")))
	b.submit()
	_, id := b.waitStatusPage()

	var stored map[string]any
	require.NoError(t, b.api.Pool.QueryRow(t.Context(), `SELECT answers FROM applications WHERE id = $1`, id).Scan(&stored))
	require.Equal(t, map[string]any{"work_permit": true, "start": "In May", "motivation": "Engines.\nAnd looms.", "level": "Senior"}, stored)

	// The questions fit a phone's width.
	b.do(chromedp.EmulateViewport(375, 800), chromedp.Navigate(b.api.URL+"/jobs/"+b.slug), chromedp.WaitVisible(submitButton))
	b.checkLayout("form with questions", `[id="answers.work_permit"]`, `[id="answers.start"]`, `[id="answers.motivation"]`,
		`[id="answers.level-3"]`, `[id="answers.work_permit-hint"]`, string(submitButton))
	b.screenshot(shots(t), "posting-questions", 375)
}

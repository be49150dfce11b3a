package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/testkit"
)

// questionsJSON has one question of each kind.
const questionsJSON = `[
	{"key":"work_permit","label":"Do you have a work permit for the EU?","kind":"yes_no","required":true},
	{"key":"start","label":"When could you start?","kind":"short_text","required":false,"hint":"A date or a notice period."},
	{"key":"motivation","label":"Why this team?","kind":"long_text","required":false},
	{"key":"level","label":"Your level","kind":"choice","required":true,"choices":["Junior","Senior"]}
]`

// createQuestionsPosting creates an open posting with questionsJSON through
// the admin API and returns its slug.
func createQuestionsPosting(t *testing.T, api *testkit.API, slug string) string {
	t.Helper()
	_, admin := mint(t, api, access.RoleAdmin)
	res := as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"`+slug+`","title":"Go engineer","questions":`+questionsJSON+`}`)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	return slug
}

// withAnswers is validBody with an "answers" member.
func withAnswers(answers string) string {
	return strings.TrimSuffix(validBody, "}") + `,"answers":` + answers + `}`
}

type questionJSON struct {
	Key      string   `json:"key"`
	Label    string   `json:"label"`
	Kind     string   `json:"kind"`
	Required bool     `json:"required"`
	Choices  []string `json:"choices"`
	Hint     string   `json:"hint"`
}

func TestAdminCreateJobWithQuestions(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := createQuestionsPosting(t, api, "go-engineer")

	var want []questionJSON
	require.NoError(t, json.Unmarshal([]byte(questionsJSON), &want))
	res := api.Do(t, http.MethodGet, "/api/v1/jobs/"+slug, "")
	require.Equal(t, http.StatusOK, res.Status)
	var job struct {
		Questions []questionJSON `json:"questions"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &job))
	require.Equal(t, want, job.Questions, "the posting shows its questions as given")

	res = api.Do(t, http.MethodGet, "/api/v1/jobs", "")
	var list struct {
		Jobs []struct {
			Questions []questionJSON `json:"questions"`
		} `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &list))
	require.Len(t, list.Jobs, 1)
	require.Equal(t, want, list.Jobs[0].Questions, "and so does the list")

	// A posting without questions shows an empty list, never null.
	api.CreatePosting(t, "plain")
	res = api.Do(t, http.MethodGet, "/api/v1/jobs/plain", "")
	require.Contains(t, string(res.Body), `"questions":[]`)
}

func TestAdminCreateJobRefusesBadQuestions(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	_, admin := mint(t, api, access.RoleAdmin)

	q := func(s string) string { return `{"key":"q","label":"Q","kind":"short_text","required":false` + s + `}` }
	many := make([]string, 21)
	for i := range many {
		many[i] = `{"key":"q` + string(rune('a'+i)) + `","label":"Q","kind":"short_text"}`
	}
	tests := []struct {
		name, questions, field string
		status                 int
	}{
		{"unknown kind", `[` + q("") + `,{"key":"b","label":"B","kind":"yes_no"},{"key":"c","label":"C","kind":"date"}]`, "questions[2].kind", 422},
		{"bad key", `[{"key":"Bad Key","label":"Q","kind":"yes_no"}]`, "questions[0].key", 422},
		{"repeated key", `[` + q("") + `,` + q("") + `]`, "questions[1].key", 422},
		{"label missing", `[{"key":"q","kind":"yes_no"}]`, "questions[0].label", 422},
		{"choice with one choice", `[{"key":"q","label":"Q","kind":"choice","choices":["A"]}]`, "questions[0].choices", 422},
		{"repeated choice", `[{"key":"q","label":"Q","kind":"choice","choices":["A","A"]}]`, "questions[0].choices[1]", 422},
		{"choices on text", `[` + q(`,"choices":["A","B"]`) + `]`, "questions[0].choices", 422},
		{"too many", `[` + strings.Join(many, ",") + `]`, "questions", 422},
		{"unknown field", `[` + q(`,"placeholder":"x"`) + `]`, "questions.placeholder", 400},
		{"not a list", `{"key":"q"}`, "questions", 400},
		{"required not a bool", `[{"key":"q","label":"Q","kind":"yes_no","required":"yes"}]`, "questions.required", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := as(t, api, admin, http.MethodPost, "/api/v1/admin/jobs", `{"slug":"qa","title":"QA","questions":`+tt.questions+`}`)
			typ := "validation"
			if tt.status == http.StatusBadRequest {
				typ = "invalid-json"
			}
			p := requireProblem(t, res, tt.status, typ)
			require.Len(t, p.Errors, 1, "body: %s", res.Body)
			require.Equal(t, tt.field, p.Errors[0].Field)
			require.NotEmpty(t, p.Errors[0].Message)
		})
	}
	require.Zero(t, api.Count(t, "postings"), "no bad posting was stored")
}

func TestSubmitAnswers(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := createQuestionsPosting(t, api, "go-engineer")
	_, viewer := mint(t, api, access.RoleViewer)

	res := api.Submit(t, slug, "key-1", withAnswers(`{"work_permit":false,"start":" In May ","motivation":"Engines.\nLooms.","level":"Senior"}`))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var r receipt
	require.NoError(t, json.Unmarshal(res.Body, &r))

	var stored string
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT answers::text FROM applications WHERE id = $1`, r.ID).Scan(&stored))
	require.JSONEq(t, `{"work_permit":false,"start":"In May","motivation":"Engines.\nLooms.","level":"Senior"}`, stored,
		"stored trimmed, with their JSON types")

	res = as(t, api, viewer, http.MethodGet, "/api/v1/admin/applications/"+r.ID, "")
	require.Equal(t, http.StatusOK, res.Status)
	var rec struct {
		Answers map[string]any `json:"answers"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &rec))
	require.Equal(t, map[string]any{"work_permit": false, "start": "In May", "motivation": "Engines.\nLooms.", "level": "Senior"}, rec.Answers)

	// Only the required ones; yes_no true.
	res = api.Submit(t, slug, "key-2", strings.Replace(withAnswers(`{"work_permit":true,"level":"Junior"}`), "ada@", "grace@", 1))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	require.NoError(t, json.Unmarshal(res.Body, &r))
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT answers::text FROM applications WHERE id = $1`, r.ID).Scan(&stored))
	require.JSONEq(t, `{"work_permit":true,"level":"Junior"}`, stored)
}

func TestSubmitRefusesBadAnswers(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := createQuestionsPosting(t, api, "go-engineer")

	tests := []struct {
		name, answers, field, msg string
	}{
		{"required missing", `{"level":"Senior"}`, "answers.work_permit", "is required"},
		{"required choice null", `{"work_permit":true,"level":null}`, "answers.level", "is required"},
		{"yes_no as a string", `{"work_permit":"yes","level":"Senior"}`, "answers.work_permit", "true or false"},
		{"text as a number", `{"work_permit":true,"level":"Senior","start":5}`, "answers.start", "must be a string"},
		{"unknown key", `{"work_permit":true,"level":"Senior","salary":"a lot"}`, "answers.salary", "not a question"},
		{"choice not among choices", `{"work_permit":true,"level":"Principal"}`, "answers.level", "one of"},
		{"short text too long", `{"work_permit":true,"level":"Senior","start":"` + strings.Repeat("x", 201) + `"}`, "answers.start", "200"},
		{"long text too long", `{"work_permit":true,"level":"Senior","motivation":"` + strings.Repeat("x", 5001) + `"}`, "answers.motivation", "5000"},
		{"short text with a line break", `{"work_permit":true,"level":"Senior","start":"a\nb"}`, "answers.start", "line breaks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requireProblem(t, api.Submit(t, slug, "key-"+tt.name, withAnswers(tt.answers)), http.StatusUnprocessableEntity, "validation")
			require.Len(t, p.Errors, 1)
			require.Equal(t, tt.field, p.Errors[0].Field)
			require.Contains(t, p.Errors[0].Message, tt.msg)
		})
	}
	t.Run("answers not an object", func(t *testing.T) {
		p := requireProblem(t, api.Submit(t, slug, "key-list", withAnswers(`["yes"]`)), http.StatusBadRequest, "invalid-json")
		require.Equal(t, "answers", p.Errors[0].Field)
	})
	t.Run("repeated answer key", func(t *testing.T) {
		p := requireProblem(t, api.Submit(t, slug, "key-repeat", withAnswers(`{"work_permit":true,"work_permit":false,"level":"Senior"}`)),
			http.StatusBadRequest, "invalid-json")
		require.Equal(t, "answers.work_permit", p.Errors[0].Field)
	})

	// Nothing was written, so the same key takes the corrected body.
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
	res := api.Submit(t, slug, "key-required missing", withAnswers(`{"work_permit":true,"level":"Senior"}`))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)

	// A posting without questions takes no answers, but takes a body
	// without them as before.
	api.CreatePosting(t, "plain")
	p := requireProblem(t, api.Submit(t, "plain", "key-plain", withAnswers(`{"x":"y"}`)), http.StatusUnprocessableEntity, "validation")
	require.Equal(t, "answers.x", p.Errors[0].Field)
	require.Equal(t, http.StatusCreated, api.Submit(t, "plain", "key-plain", validBody).Status)
	require.Equal(t, http.StatusCreated, api.Submit(t, "plain", "key-plain-2", strings.Replace(withAnswers(`{}`), "ada@", "grace@", 1)).Status)
}

// Answers are part of the request the idempotency key stands for.
func TestSubmitAnswersFingerprint(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := createQuestionsPosting(t, api, "go-engineer")

	first := api.Submit(t, slug, "key-1", withAnswers(`{"work_permit":true,"level":"Senior","start":"May"}`))
	require.Equal(t, http.StatusCreated, first.Status, "body: %s", first.Body)

	// The same answers, in another order and with spaces around a text: the
	// same request.
	again := api.Submit(t, slug, "key-1", withAnswers(`{"start":" May ","level":"Senior","work_permit":true}`))
	require.Equal(t, http.StatusCreated, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, string(first.Body), string(again.Body))

	for name, answers := range map[string]string{
		"a yes_no flipped":     `{"work_permit":false,"level":"Senior","start":"May"}`,
		"another choice":       `{"work_permit":true,"level":"Junior","start":"May"}`,
		"another text":         `{"work_permit":true,"level":"Senior","start":"June"}`,
		"an optional left out": `{"work_permit":true,"level":"Senior"}`,
	} {
		t.Run(name, func(t *testing.T) {
			requireProblem(t, api.Submit(t, slug, "key-1", withAnswers(answers)), http.StatusUnprocessableEntity, "idempotency-key-reused")
		})
	}
	require.Equal(t, 1, api.Count(t, "applications"))
}

// The form shows each kind of question and takes its answers: a yes_no's
// "yes" and "no" as true and false, a question left blank as no answer.
func TestFormQuestions(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	_, err := api.Store.CreatePosting(t.Context(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer", Questions: []application.Question{
		{Key: "work_permit", Label: "Work permit <EU>?", Kind: application.KindYesNo, Required: true, Hint: "Answer no if you need a visa."},
		{Key: "start", Label: "When could you start?", Kind: application.KindShortText},
		{Key: "motivation", Label: "Why this team?", Kind: application.KindLongText, Hint: "A few lines & no more."},
		{Key: "level", Label: "Your level", Kind: application.KindChoice, Required: true, Choices: []string{"Junior", "Senior & up"}},
	}})
	require.NoError(t, err)
	b := newBrowser(t, api)

	form := b.get("/jobs/go-engineer")
	require.Equal(t, http.StatusOK, form.Status)
	golden(t, "posting_questions.html", form.Body)

	// A tampered yes_no, the required choice left out: both named, beside
	// their questions, and what was sent kept.
	v := fillIn(formFields(t, form.Body), "Ada Lovelace", "ada@example.com")
	v.Set("answers.work_permit", "maybe")
	v.Set("answers.start", "In May")
	v.Set("answers.motivation", "Engines.\r\nLooms.")
	invalid := b.post("/jobs/go-engineer/apply", v)
	require.Equal(t, http.StatusUnprocessableEntity, invalid.Status)
	golden(t, "posting_questions_invalid.html", invalid.Body)
	require.Contains(t, invalid.Body, `<a href="#answers.work_permit">The answer to “Work permit &lt;EU&gt;?” must be true or false.</a>`)
	require.Contains(t, invalid.Body, `<a href="#answers.level">The answer to “Your level” is required.</a>`)
	require.Zero(t, api.Count(t, "applications"))

	v.Set("answers.work_permit", "no")
	v.Set("answers.level", "Senior & up")
	created := b.post("/jobs/go-engineer/apply", v)
	require.Equal(t, http.StatusSeeOther, created.Status, created.Body)
	var stored string
	require.NoError(t, api.Pool.QueryRow(t.Context(), `SELECT answers::text FROM applications`).Scan(&stored))
	require.JSONEq(t, `{"work_permit":false,"start":"In May","motivation":"Engines.\nLooms.","level":"Senior & up"}`, stored)
}

// Invariant 8 for answers: a submit with answers, and one whose answers
// are refused, leave none of them in the logs.
func TestLogsCarryNoAnswers(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := createQuestionsPosting(t, api, "go-engineer")

	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1",
		withAnswers(`{"work_permit":true,"level":"Senior","start":"Quaternion Tuesday","motivation":"Difference engines"}`)).Status)
	require.Equal(t, http.StatusUnprocessableEntity, api.Submit(t, slug, "key-2",
		withAnswers(`{"work_permit":true,"level":"Analytical Grandmaster","start":"Jacquard loom day"}`)).Status)

	logs := strings.ToLower(api.Logs.String())
	require.Contains(t, logs, `"route":"/api/v1/jobs/:slug/applications"`)
	for _, secret := range []string{"Quaternion", "Difference engines", "Analytical Grandmaster", "Jacquard"} {
		require.NotContains(t, logs, strings.ToLower(secret), "logs must not contain %q", secret)
	}
}

// The longest answers a posting allows (every question a long_text
// answered with 5,000 characters of 4 bytes each: 400 KB) are taken by the
// JSON API, as JSON and in a multipart body, and by the form, although
// they are far over INTAKE_MAX_BODY_BYTES (64 KiB by default).
func TestSubmitLongestAnswersTaken(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	var qs []application.Question
	answers := map[string]string{}
	for i := range application.MaxQuestions {
		key := fmt.Sprintf("q%d", i)
		qs = append(qs, application.Question{Key: key, Label: "Question " + key, Kind: application.KindLongText})
		answers[key] = strings.Repeat("😀", application.MaxLongAnswerLen)
	}
	_, err := api.Store.CreatePosting(t.Context(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer", Questions: qs})
	require.NoError(t, err)
	a, err := json.Marshal(answers)
	require.NoError(t, err)
	body := func(email string) string {
		return `{"full_name":"Ada Lovelace","email":"` + email + `","answers":` + string(a) + `}`
	}
	require.Greater(t, len(body("ada@example.com")), 400_000)

	res := api.Submit(t, "go-engineer", "key-1", body("ada1@example.com"))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res = submitMultipart(t, api, "go-engineer", "key-2", jsonPart(body("ada2@example.com")))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)

	b := newBrowser(t, api)
	fields := fillIn(formFields(t, b.get("/jobs/go-engineer").Body), "Ada Lovelace", "ada3@example.com")
	order := append([]string{}, formOrder...)
	for key, answer := range answers {
		fields.Set("answers."+key, answer)
		order = append(order, "answers."+key)
	}
	page := b.postMultipart("/jobs/go-engineer/apply", fields, order, nil)
	require.Equal(t, http.StatusSeeOther, page.Status, page.Body)
	require.Equal(t, 3, api.Count(t, "applications"))
}

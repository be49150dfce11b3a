package application_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

// validQuestions has one question of each kind; each case breaks one thing.
func validQuestions() []application.Question {
	return []application.Question{
		{Key: "work_permit", Label: "Do you have a work permit for the EU?", Kind: application.KindYesNo, Required: true},
		{Key: "start", Label: "When could you start?", Kind: application.KindShortText, Hint: "A date or a notice period."},
		{Key: "motivation", Label: "Why this team?", Kind: application.KindLongText},
		{Key: "level", Label: "Your level", Kind: application.KindChoice, Required: true, Choices: []string{"Junior", "Senior"}},
	}
}

func TestNewPostingValidateQuestions(t *testing.T) {
	t.Parallel()

	many := func(n int) []application.Question {
		qs := make([]application.Question, n)
		for i := range qs {
			qs[i] = application.Question{Key: "q" + strconv.Itoa(i), Label: "Question", Kind: application.KindShortText}
		}
		return qs
	}
	choices := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "Choice " + strconv.Itoa(i)
		}
		return out
	}

	tests := []struct {
		name  string
		edit  func(qs []application.Question) []application.Question
		field string // "" when valid
		msg   string
	}{
		{name: "valid", edit: func(qs []application.Question) []application.Question { return qs }},
		{name: "none", edit: func([]application.Question) []application.Question { return nil }},
		{name: "at the limit", edit: func([]application.Question) []application.Question { return many(application.MaxQuestions) }},
		{name: "one over the limit", edit: func([]application.Question) []application.Question { return many(application.MaxQuestions + 1) },
			field: "questions", msg: "at most 20"},
		{name: "key missing", edit: func(qs []application.Question) []application.Question { qs[1].Key = " "; return qs },
			field: "questions[1].key", msg: "required"},
		{name: "key upper case", edit: func(qs []application.Question) []application.Question { qs[1].Key = "Start"; return qs },
			field: "questions[1].key", msg: "lower-case"},
		{name: "key starts with a digit", edit: func(qs []application.Question) []application.Question { qs[1].Key = "1st"; return qs },
			field: "questions[1].key"},
		{name: "key with a dot", edit: func(qs []application.Question) []application.Question { qs[1].Key = "a.b"; return qs },
			field: "questions[1].key"},
		{name: "key at 40", edit: func(qs []application.Question) []application.Question { qs[1].Key = strings.Repeat("k", 40); return qs }},
		{name: "key at 41", edit: func(qs []application.Question) []application.Question { qs[1].Key = strings.Repeat("k", 41); return qs },
			field: "questions[1].key"},
		{name: "key repeated", edit: func(qs []application.Question) []application.Question { qs[2].Key = "start"; return qs },
			field: "questions[2].key", msg: "unique"},
		{name: "label missing", edit: func(qs []application.Question) []application.Question { qs[0].Label = ""; return qs },
			field: "questions[0].label", msg: "required"},
		{name: "label invisible", edit: func(qs []application.Question) []application.Question { qs[0].Label = "\u200b"; return qs },
			field: "questions[0].label", msg: "visible"},
		{name: "label with a line break", edit: func(qs []application.Question) []application.Question { qs[0].Label = "a\nb"; return qs },
			field: "questions[0].label", msg: "control"},
		{name: "label at limit", edit: func(qs []application.Question) []application.Question {
			qs[0].Label = strings.Repeat("é", application.MaxQuestionLabel)
			return qs
		}},
		{name: "label over limit", edit: func(qs []application.Question) []application.Question {
			qs[0].Label = strings.Repeat("é", application.MaxQuestionLabel+1)
			return qs
		}, field: "questions[0].label", msg: "200"},
		{name: "hint over limit", edit: func(qs []application.Question) []application.Question {
			qs[1].Hint = strings.Repeat("h", application.MaxQuestionHint+1)
			return qs
		}, field: "questions[1].hint", msg: "500"},
		{name: "kind unknown", edit: func(qs []application.Question) []application.Question { qs[2].Kind = "date"; return qs },
			field: "questions[2].kind", msg: `"short_text"`},
		{name: "kind missing", edit: func(qs []application.Question) []application.Question { qs[2].Kind = ""; return qs },
			field: "questions[2].kind"},
		{name: "choices on a text question", edit: func(qs []application.Question) []application.Question {
			qs[1].Choices = []string{"a", "b"}
			return qs
		}, field: "questions[1].choices", msg: "only for"},
		{name: "choice without choices", edit: func(qs []application.Question) []application.Question { qs[3].Choices = nil; return qs },
			field: "questions[3].choices", msg: "2 to 20"},
		{name: "one choice", edit: func(qs []application.Question) []application.Question { qs[3].Choices = []string{"Only"}; return qs },
			field: "questions[3].choices", msg: "2 to 20"},
		{name: "twenty choices", edit: func(qs []application.Question) []application.Question { qs[3].Choices = choices(20); return qs }},
		{name: "21 choices", edit: func(qs []application.Question) []application.Question { qs[3].Choices = choices(21); return qs },
			field: "questions[3].choices"},
		{name: "empty choice", edit: func(qs []application.Question) []application.Question {
			qs[3].Choices = []string{"Junior", "  "}
			return qs
		}, field: "questions[3].choices[1]", msg: "required"},
		{name: "repeated choice", edit: func(qs []application.Question) []application.Question {
			qs[3].Choices = []string{"Senior", " Senior "}
			return qs
		}, field: "questions[3].choices[1]", msg: "differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := application.NewPosting{Slug: "go", Title: "Go", Questions: tt.edit(validQuestions())}
			got := fieldErrors(t, p.Validate())
			if tt.field == "" {
				require.Empty(t, got)
				return
			}
			require.Equal(t, []string{tt.field}, fields(got))
			require.Contains(t, got[tt.field], tt.msg)
		})
	}
}

func TestNewPostingValidateTrimsQuestions(t *testing.T) {
	t.Parallel()
	p := application.NewPosting{Slug: "go", Title: "Go", Questions: []application.Question{
		{Key: " level ", Label: " Level ", Kind: application.KindChoice, Hint: " Pick one. ", Choices: []string{" Junior", "Senior "}},
	}}
	require.NoError(t, p.Validate())
	require.Equal(t, application.Question{Key: "level", Label: "Level", Kind: application.KindChoice, Hint: "Pick one.",
		Choices: []string{"Junior", "Senior"}}, p.Questions[0])
}

func TestApplicantValidateForAnswers(t *testing.T) {
	t.Parallel()

	valid := func() application.Answers {
		return application.Answers{"work_permit": false, "start": "In May", "motivation": "Engines.\nAnd looms.", "level": "Senior"}
	}
	tests := []struct {
		name  string
		edit  func(a application.Answers)
		field string // "" when valid
		msg   string
		want  application.Answers // the stored answers, when valid and not valid()
	}{
		{name: "every kind", edit: func(application.Answers) {}},
		{name: "only the required ones", edit: func(a application.Answers) { delete(a, "start"); delete(a, "motivation") },
			want: application.Answers{"work_permit": false, "level": "Senior"}},
		{name: "blank optional text is no answer", edit: func(a application.Answers) { a["start"] = "  "; a["motivation"] = nil },
			want: application.Answers{"work_permit": false, "level": "Senior"}},
		{name: "text is trimmed", edit: func(a application.Answers) { a["start"] = "  In May " },
			want: application.Answers{"work_permit": false, "start": "In May", "motivation": "Engines.\nAnd looms.", "level": "Senior"}},
		{name: "required yes_no missing", edit: func(a application.Answers) { delete(a, "work_permit") },
			field: "answers.work_permit", msg: "required"},
		{name: "required choice blank", edit: func(a application.Answers) { a["level"] = " " },
			field: "answers.level", msg: "required"},
		{name: "yes_no as a string", edit: func(a application.Answers) { a["work_permit"] = "yes" },
			field: "answers.work_permit", msg: "true or false"},
		{name: "text as a bool", edit: func(a application.Answers) { a["start"] = true },
			field: "answers.start", msg: "string"},
		{name: "text as a number", edit: func(a application.Answers) { a["motivation"] = 42.0 },
			field: "answers.motivation", msg: "string"},
		{name: "choice not among choices", edit: func(a application.Answers) { a["level"] = "senior" },
			field: "answers.level", msg: "one of"},
		{name: "unknown key", edit: func(a application.Answers) { a["salary"] = "a lot" },
			field: "answers.salary", msg: "not a question"},
		{name: "short text at limit", edit: func(a application.Answers) {
			a["start"] = strings.Repeat("é", application.MaxShortAnswerLen)
		}, want: application.Answers{"work_permit": false, "start": strings.Repeat("é", application.MaxShortAnswerLen),
			"motivation": "Engines.\nAnd looms.", "level": "Senior"}},
		{name: "short text over limit", edit: func(a application.Answers) {
			a["start"] = strings.Repeat("é", application.MaxShortAnswerLen+1)
		}, field: "answers.start", msg: "200"},
		{name: "short text with a line break", edit: func(a application.Answers) { a["start"] = "In\nMay" },
			field: "answers.start", msg: "line breaks"},
		{name: "short text with a zero-width space", edit: func(a application.Answers) { a["start"] = "In\u200bMay" },
			field: "answers.start", msg: "invisible"},
		{name: "short text of invisible characters only", edit: func(a application.Answers) { a["start"] = "\u200b" },
			field: "answers.start", msg: "visible"},
		{name: "long text over limit", edit: func(a application.Answers) {
			a["motivation"] = strings.Repeat("x", application.MaxLongAnswerLen+1)
		}, field: "answers.motivation", msg: "5000"},
		{name: "long text with a NUL", edit: func(a application.Answers) { a["motivation"] = "a\x00b" },
			field: "answers.motivation", msg: "control"},
		{name: "long text with a direction override", edit: func(a application.Answers) { a["motivation"] = "a\u202eb" },
			field: "answers.motivation", msg: "direction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := validApplicant()
			a.Answers = valid()
			tt.edit(a.Answers)
			got := fieldErrors(t, a.ValidateFor(validQuestions()))
			if tt.field == "" {
				require.Empty(t, got)
				want := tt.want
				if want == nil {
					want = valid()
				}
				require.Equal(t, want, a.Answers)
				return
			}
			require.Equal(t, []string{tt.field}, fields(got))
			require.Contains(t, got[tt.field], tt.msg)
		})
	}
}

func TestApplicantValidateWithoutQuestions(t *testing.T) {
	t.Parallel()
	a := validApplicant()
	require.NoError(t, a.Validate())
	require.Nil(t, a.Answers)

	a.Answers = application.Answers{"anything": "x"}
	got := fieldErrors(t, a.Validate())
	require.Equal(t, []string{"answers.anything"}, fields(got), "a posting without questions takes no answers")
}

func TestApplicantValidateForReportsAnswersWithOtherFields(t *testing.T) {
	t.Parallel()
	a := validApplicant()
	a.FullName = ""
	got := fieldErrors(t, a.ValidateFor(validQuestions()))
	require.ElementsMatch(t, []string{"full_name", "answers.work_permit", "answers.level"}, fields(got),
		"one response lists every problem, the answers' included")
}

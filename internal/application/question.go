package application

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// QuestionKind is how a question is answered.
type QuestionKind string

const (
	// KindShortText: one line of text, at most MaxShortAnswerLen characters.
	KindShortText QuestionKind = "short_text"
	// KindLongText: free text with line breaks, at most MaxLongAnswerLen characters.
	KindLongText QuestionKind = "long_text"
	// KindYesNo: true or false.
	KindYesNo QuestionKind = "yes_no"
	// KindChoice: exactly one of the question's choices.
	KindChoice QuestionKind = "choice"
)

// Limits of a posting's questions and of their answers.
const (
	MaxQuestions      = 20
	MaxQuestionKeyLen = 40
	MaxQuestionLabel  = 200
	MaxQuestionHint   = 500
	MinChoices        = 2
	MaxChoices        = 20
	MaxChoiceLen      = 200
	MaxShortAnswerLen = 200
	MaxLongAnswerLen  = 5000
	// MaxAnswersBytes bounds an application's answers as JSON (the
	// database's CHECK holds the same number): every question a long
	// answer of 4-byte characters, with room for the keys.
	MaxAnswersBytes    = MaxQuestions*MaxLongAnswerLen*4 + 20000
	questionKeyPattern = `^[a-z][a-z0-9_]{0,39}$`
)

var questionKey = regexp.MustCompile(questionKeyPattern)

// Question is one extra question a posting asks its applicants. The JSON
// names are the admin API's and the stored form's (postings.questions).
type Question struct {
	Key      string       `json:"key"`
	Label    string       `json:"label"`
	Kind     QuestionKind `json:"kind"`
	Required bool         `json:"required"`
	Choices  []string     `json:"choices,omitempty"`
	Hint     string       `json:"hint,omitempty"`
}

// Answers are an applicant's answers by question key: a string for
// short_text, long_text and choice questions, a bool for yes_no ones. They
// are personal data like the rest of Applicant.
type Answers map[string]any

// validateQuestions normalises qs (trims labels, hints and choices) and
// records every broken rule in v under questions[i].field.
func validateQuestions(v *ValidationError, qs []Question) {
	if len(qs) > MaxQuestions {
		v.add("questions", "must list at most "+strconv.Itoa(MaxQuestions)+" questions")
		return
	}
	keys := map[string]bool{}
	for i := range qs {
		q := &qs[i]
		at := "questions[" + strconv.Itoa(i) + "]."
		q.Key = strings.TrimSpace(q.Key)
		q.Label = strings.TrimSpace(q.Label)
		q.Hint = strings.TrimSpace(q.Hint)

		switch {
		case q.Key == "":
			v.add(at+"key", "is required")
		case !questionKey.MatchString(q.Key):
			v.add(at+"key", "must be 1 to 40 lower-case letters, digits and underscores, starting with a letter")
		case keys[q.Key]:
			v.add(at+"key", "must be unique within the posting (another question already uses "+strconv.Quote(q.Key)+")")
		}
		keys[q.Key] = true

		if msg := lineProblem(q.Label, MaxQuestionLabel); msg != "" {
			v.add(at+"label", msg)
		}
		if q.Hint != "" {
			if msg := lineProblem(q.Hint, MaxQuestionHint); msg != "" {
				v.add(at+"hint", msg)
			}
		}

		switch q.Kind {
		case KindShortText, KindLongText, KindYesNo:
			if len(q.Choices) > 0 {
				v.add(at+"choices", "is only for questions of kind choice")
			}
		case KindChoice:
			validateChoices(v, at, q)
		default:
			v.add(at+"kind", `must be one of "short_text", "long_text", "yes_no" and "choice"`)
		}
	}
}

func validateChoices(v *ValidationError, at string, q *Question) {
	if len(q.Choices) < MinChoices || len(q.Choices) > MaxChoices {
		v.add(at+"choices", "must list "+strconv.Itoa(MinChoices)+" to "+strconv.Itoa(MaxChoices)+" choices")
		return
	}
	choices := make([]string, len(q.Choices))
	seen := map[string]bool{}
	for j, c := range q.Choices {
		c = strings.TrimSpace(c)
		choices[j] = c
		field := at + "choices[" + strconv.Itoa(j) + "]"
		if msg := lineProblem(c, MaxChoiceLen); msg != "" {
			v.add(field, msg)
		} else if seen[c] {
			v.add(field, "must differ from the other choices")
		}
		seen[c] = true
	}
	q.Choices = choices
}

// lineProblem says what is wrong with a required one-line text of at most
// max characters (full_name, a title, a label); "" when nothing is.
func lineProblem(s string, max int) string {
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "is required"
	case n > max:
		return "must be at most " + strconv.Itoa(max) + " characters"
	case !plainText(s, false):
		return "must not contain control characters"
	case !visible(s):
		return "is required (it has no visible characters)"
	case hasInvisible(s):
		return noInvisible
	}
	return ""
}

// validateAnswers normalises answers against qs and records every problem
// in v under answers.<key>. It returns the answers to store: trimmed text,
// without the questions left unanswered (a null, an empty or blank text).
func validateAnswers(v *ValidationError, qs []Question, answers Answers) Answers {
	out := Answers{}
	known := make(map[string]bool, len(qs))
	for _, q := range qs {
		known[q.Key] = true
		field := "answers." + q.Key
		raw, given := answers[q.Key]
		if s, ok := raw.(string); ok {
			raw = strings.TrimSpace(s)
			given = raw != ""
		}
		if raw == nil {
			given = false
		}
		if !given {
			if q.Required {
				v.add(field, "is required")
			}
			continue
		}
		if msg := answerProblem(q, raw); msg != "" {
			v.add(field, msg)
			continue
		}
		out[q.Key] = raw
	}
	// Sorted, so the same body always lists its errors in the same order.
	for _, key := range slices.Sorted(maps.Keys(answers)) {
		if !known[key] {
			v.add("answers."+key, "is not a question of this posting")
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// answerProblem says what is wrong with a given (non-empty) answer to q.
func answerProblem(q Question, raw any) string {
	if q.Kind == KindYesNo {
		if _, ok := raw.(bool); !ok {
			return "must be true or false"
		}
		return ""
	}
	s, ok := raw.(string)
	if !ok {
		return "must be a string"
	}
	switch q.Kind {
	case KindShortText:
		switch {
		case utf8.RuneCountInString(s) > MaxShortAnswerLen:
			return "must be at most " + strconv.Itoa(MaxShortAnswerLen) + " characters"
		case !plainText(s, false):
			return "must not contain control characters or line breaks"
		case !visible(s):
			return "must have visible characters"
		case hasInvisible(s):
			return noInvisible
		}
	case KindLongText:
		switch {
		case utf8.RuneCountInString(s) > MaxLongAnswerLen:
			return "must be at most " + strconv.Itoa(MaxLongAnswerLen) + " characters"
		case !plainText(s, true):
			return "must not contain control characters"
		case !visible(s):
			return "must have visible characters"
		case hasDirectionOverride(s):
			return noDirectionOverride
		}
	case KindChoice:
		for _, c := range q.Choices {
			if s == c {
				return ""
			}
		}
		return "must be one of the question's choices"
	}
	return ""
}

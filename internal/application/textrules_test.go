package application_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

// Invisible and text-direction characters: a name made of them shows as
// nothing, and a bidi override reorders what operators and the email
// greeting show ("Ann \u202efdp.exe" reads "Ann exe.pdf"). Single-line
// fields refuse every one; the cover letter refuses the direction
// overrides, embeddings and isolates, and keeps the joiners and marks that
// real text in many scripts needs.
func TestApplicantRefusesInvisibleAndBidiCharacters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(a *application.Applicant)
		field string
	}{
		{"name only a zero-width space", func(a *application.Applicant) { a.FullName = "\u200b" }, "full_name"},
		{"name only invisible fillers", func(a *application.Applicant) { a.FullName = "\u3164\u2800\u00ad" }, "full_name"},
		{"name with a right-to-left override", func(a *application.Applicant) { a.FullName = "Ann \u202efdp.exe" }, "full_name"},
		{"name with an isolate", func(a *application.Applicant) { a.FullName = "Ann \u2066x\u2069" }, "full_name"},
		{"name with a byte-order mark", func(a *application.Applicant) { a.FullName = "\ufeffAnn" }, "full_name"},
		{"name with a word joiner", func(a *application.Applicant) { a.FullName = "An\u2060n" }, "full_name"},
		{"name with a soft hyphen", func(a *application.Applicant) { a.FullName = "An\u00adn" }, "full_name"},
		{"name with a left-to-right mark", func(a *application.Applicant) { a.FullName = "Ann\u200e" }, "full_name"},
		{"name with an Arabic letter mark", func(a *application.Applicant) { a.FullName = "Ann\u061c" }, "full_name"},
		{"name with a zero-width joiner between Latin letters", func(a *application.Applicant) { a.FullName = "An\u200dn" }, "full_name"},
		{"name with a trailing non-joiner", func(a *application.Applicant) { a.FullName = "حسین\u200c" }, "full_name"},
		{"name with a line separator", func(a *application.Applicant) { a.FullName = "Ada\u2028Evil" }, "full_name"},
		{"name only a variation selector and a grapheme joiner", func(a *application.Applicant) { a.FullName = "\ufe0f\u034f" }, "full_name"},
		{"email with a zero-width joiner", func(a *application.Applicant) { a.Email = "ann\u200d@example.com" }, "email"},
		{"phone with a zero-width space", func(a *application.Applicant) { a.Phone = "+44\u200b20 7946 0958" }, "phone"},
		{"link with an override", func(a *application.Applicant) { a.Links = []string{"https://example.com/\u202egnp.exe"} }, "links[0]"},
		{"link with a user and password", func(a *application.Applicant) { a.Links = []string{"https://ann:secret@example.com/"} }, "links[0]"},
		{"link with a user", func(a *application.Applicant) { a.Links = []string{"https://ann@example.com/"} }, "links[0]"},
		{"cover letter with an override", func(a *application.Applicant) { a.CoverLetter = "Hello \u202eworld" }, "cover_letter"},
		{"cover letter with an isolate", func(a *application.Applicant) { a.CoverLetter = "Hello \u2067world\u2069" }, "cover_letter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := validApplicant()
			tt.edit(&a)
			got := fieldErrors(t, a.Validate())
			require.Equal(t, []string{tt.field}, fields(got), "errors: %v", got)
		})
	}
}

// What real names and letters need stays accepted.
func TestApplicantKeepsRealText(t *testing.T) {
	t.Parallel()
	for _, edit := range []func(a *application.Applicant){
		func(a *application.Applicant) { a.FullName = "José Ñúñez-O'Brien" },
		func(a *application.Applicant) { a.FullName = "محمد علي" },
		func(a *application.Applicant) { a.FullName = "王小明" },
		// Persian spells this surname with a zero-width non-joiner, Sinhala
		// "Sri" with a zero-width joiner after the virama.
		func(a *application.Applicant) { a.FullName = "حسین\u200cزاده" },
		func(a *application.Applicant) { a.FullName = "ශ්\u200dරී Perera" },
		func(a *application.Applicant) { a.FullName = "राम\u200dकुमार" },
		// Persian text needs the zero-width non-joiner, emoji the joiner,
		// mixed-direction text the marks: in the cover letter they stay.
		func(a *application.Applicant) {
			a.CoverLetter = "می\u200cخواهم — 👩\u200d💻 — abc \u200fשלום\u200e"
		},
		func(a *application.Applicant) { a.Links = []string{"https://example.com/~ann?x=1#top"} },
	} {
		a := validApplicant()
		edit(&a)
		require.NoError(t, a.Validate())
	}
}

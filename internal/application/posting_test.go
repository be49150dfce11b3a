package application_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

func TestNewPostingValidate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		p      application.NewPosting
		fields []string
		msg    string
	}{
		{name: "valid", p: application.NewPosting{Slug: "senior-go-engineer", Title: "Senior Go Engineer", Description: "Build Intake."}},
		{name: "no description", p: application.NewPosting{Slug: "go", Title: "Go"}},
		{name: "digits", p: application.NewPosting{Slug: "2026-intern-42", Title: "Intern"}},
		{name: "slug missing", p: application.NewPosting{Title: "T"}, fields: []string{"slug"}, msg: "required"},
		{name: "slug only whitespace", p: application.NewPosting{Slug: "  ", Title: "T"}, fields: []string{"slug"}, msg: "required"},
		{name: "slug at limit", p: application.NewPosting{Slug: strings.Repeat("a", application.MaxSlugLen), Title: "T"}},
		{name: "slug one over limit", p: application.NewPosting{Slug: strings.Repeat("a", application.MaxSlugLen+1), Title: "T"}, fields: []string{"slug"}, msg: "100"},
		{name: "slug upper case", p: application.NewPosting{Slug: "Go-Engineer", Title: "T"}, fields: []string{"slug"}, msg: "lower-case"},
		{name: "slug double dash", p: application.NewPosting{Slug: "go--engineer", Title: "T"}, fields: []string{"slug"}},
		{name: "slug leading dash", p: application.NewPosting{Slug: "-go", Title: "T"}, fields: []string{"slug"}},
		{name: "slug trailing dash", p: application.NewPosting{Slug: "go-", Title: "T"}, fields: []string{"slug"}},
		{name: "slug underscore", p: application.NewPosting{Slug: "go_engineer", Title: "T"}, fields: []string{"slug"}},
		{name: "slug space", p: application.NewPosting{Slug: "go engineer", Title: "T"}, fields: []string{"slug"}},
		{name: "slug slash", p: application.NewPosting{Slug: "go/engineer", Title: "T"}, fields: []string{"slug"}},
		{name: "slug non-ASCII", p: application.NewPosting{Slug: "größe", Title: "T"}, fields: []string{"slug"}},
		{name: "title missing", p: application.NewPosting{Slug: "go"}, fields: []string{"title"}, msg: "required"},
		{name: "title only whitespace", p: application.NewPosting{Slug: "go", Title: "\t \n"}, fields: []string{"title"}, msg: "required"},
		{name: "title at limit in multi-byte characters", p: application.NewPosting{Slug: "go", Title: strings.Repeat("é", application.MaxTitleLen)}},
		{name: "title one over limit", p: application.NewPosting{Slug: "go", Title: strings.Repeat("é", application.MaxTitleLen+1)}, fields: []string{"title"}, msg: "200"},
		{name: "description at limit in multi-byte characters", p: application.NewPosting{Slug: "go", Title: "T", Description: strings.Repeat("ü", application.MaxDescriptionLen)}},
		{name: "description one over limit", p: application.NewPosting{Slug: "go", Title: "T", Description: strings.Repeat("ü", application.MaxDescriptionLen+1)}, fields: []string{"description"}, msg: "20000"},
		{name: "description multiline", p: application.NewPosting{Slug: "go", Title: "T", Description: "Line one.\n\nLine two."}},
		{name: "location and team", p: application.NewPosting{Slug: "go", Title: "T", Location: "Berlin or remote", Team: "Engineering"}},
		{name: "location at limit in multi-byte characters", p: application.NewPosting{Slug: "go", Title: "T", Location: strings.Repeat("ß", application.MaxLocationLen)}},
		{name: "location one over limit", p: application.NewPosting{Slug: "go", Title: "T", Location: strings.Repeat("ß", application.MaxLocationLen+1)}, fields: []string{"location"}, msg: "200"},
		{name: "team one over limit", p: application.NewPosting{Slug: "go", Title: "T", Team: strings.Repeat("x", application.MaxTeamLen+1)}, fields: []string{"team"}, msg: "200"},
		{name: "team only whitespace is no team", p: application.NewPosting{Slug: "go", Title: "T", Team: " \t "}},
		{name: "title NUL", p: application.NewPosting{Slug: "go", Title: "a\x00b"}, fields: []string{"title"}, msg: "control"},
		{name: "title line break", p: application.NewPosting{Slug: "go", Title: "Go\nEngineer"}, fields: []string{"title"}, msg: "control"},
		{name: "title bidi override", p: application.NewPosting{Slug: "go", Title: "Go\u202eEngineer"}, fields: []string{"title"}, msg: "invisible"},
		{name: "title invalid UTF-8", p: application.NewPosting{Slug: "go", Title: "Go\xff"}, fields: []string{"title"}, msg: "control"},
		{name: "description NUL", p: application.NewPosting{Slug: "go", Title: "T", Description: "a\x00b"}, fields: []string{"description"}, msg: "control"},
		{name: "description tab", p: application.NewPosting{Slug: "go", Title: "T", Description: "Stack:\tGo"}},
		{name: "description bidi override", p: application.NewPosting{Slug: "go", Title: "T", Description: "a\u202eb"}, fields: []string{"description"}, msg: "direction"},
		{name: "location NUL", p: application.NewPosting{Slug: "go", Title: "T", Location: "a\x00b"}, fields: []string{"location"}, msg: "control"},
		{name: "team NUL", p: application.NewPosting{Slug: "go", Title: "T", Team: "a\x00b"}, fields: []string{"team"}, msg: "control"},
		{name: "team zero-width space", p: application.NewPosting{Slug: "go", Title: "T", Team: "Plat\u200bform"}, fields: []string{"team"}, msg: "invisible"},
		{name: "everything wrong", p: application.NewPosting{Slug: "Nope!", Title: "", Description: strings.Repeat("x", application.MaxDescriptionLen+1)},
			fields: []string{"slug", "title", "description"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.p
			got := fieldErrors(t, p.Validate())
			if len(tt.fields) == 0 {
				require.Empty(t, got, "want valid")
				return
			}
			require.ElementsMatch(t, tt.fields, fields(got))
			if tt.msg != "" {
				require.Contains(t, got[tt.fields[0]], tt.msg)
			}
		})
	}
}

func TestNewPostingValidateTrimsInPlace(t *testing.T) {
	t.Parallel()
	p := application.NewPosting{Slug: "  go-engineer\n", Title: "\t Go Engineer ", Description: "\n About the role. \n",
		Location: " Lisbon\n", Team: "\tPlatform "}
	require.NoError(t, p.Validate())
	require.Equal(t, application.NewPosting{Slug: "go-engineer", Title: "Go Engineer", Description: "About the role.",
		Location: "Lisbon", Team: "Platform"}, p)
}

func TestPostingPatchLocationAndTeam(t *testing.T) {
	t.Parallel()
	ptr := func(s string) *string { return &s }

	p := application.PostingPatch{Location: ptr("  Remote (EU) "), Team: ptr("")}
	require.NoError(t, p.Validate(), "location alone is a change, and an empty team clears it")
	require.Equal(t, "Remote (EU)", *p.Location)
	require.Equal(t, "", *p.Team)

	p = application.PostingPatch{Location: ptr(strings.Repeat("x", application.MaxLocationLen+1)), Team: ptr(strings.Repeat("x", application.MaxTeamLen+1))}
	require.ElementsMatch(t, []string{"location", "team"}, fields(fieldErrors(t, p.Validate())))

	p = application.PostingPatch{}
	require.Contains(t, fieldErrors(t, p.Validate())["title"], "location, team")
}

// A patch checks its text by the rules a new posting's fields follow.
func TestPostingPatchTextRules(t *testing.T) {
	t.Parallel()
	ptr := func(s string) *string { return &s }
	p := application.PostingPatch{Title: ptr("a\x00b"), Description: ptr("a\x00b"), Location: ptr("a\x00b"), Team: ptr("a\x00b")}
	got := fieldErrors(t, p.Validate())
	require.ElementsMatch(t, []string{"title", "description", "location", "team"}, fields(got))
	for field, msg := range got {
		require.Contains(t, msg, "control characters", field)
	}

	p = application.PostingPatch{Title: ptr("  "), Description: ptr("Line one.\n\tLine two.")}
	require.Equal(t, map[string]string{"title": "is required"}, fieldErrors(t, p.Validate()))
}

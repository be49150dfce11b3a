package application_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

// validApplicant returns an applicant that passes every rule; each case
// breaks one thing about it.
func validApplicant() application.Applicant {
	return application.Applicant{
		FullName:    "Ada Lovelace",
		Email:       "ada@example.com",
		Phone:       "+44 20 7946 0958",
		CoverLetter: "I would like to work on engines.",
		Links:       []string{"https://example.com/ada", "http://github.com/ada"},
	}
}

// fieldErrors returns the field → message map of a validation error, or nil
// when err is nil. Anything other than a *ValidationError fails the test.
func fieldErrors(t *testing.T, err error) map[string]string {
	t.Helper()
	if err == nil {
		return nil
	}
	var v *application.ValidationError
	require.True(t, errors.As(err, &v), "want *application.ValidationError, got %T: %v", err, err)
	require.NotEmpty(t, v.Errors, "a ValidationError must list at least one field")
	got := make(map[string]string, len(v.Errors))
	for _, fe := range v.Errors {
		_, dup := got[fe.Field]
		require.False(t, dup, "field %q reported twice", fe.Field)
		require.NotEmpty(t, fe.Message, "field %q has no message", fe.Field)
		got[fe.Field] = fe.Message
		require.Contains(t, err.Error(), fe.Field, "Error() names every field")
	}
	return got
}

func fields(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	return out
}

func TestApplicantValidate(t *testing.T) {
	t.Parallel()

	// An email of exactly n bytes: a 64-byte local part and a dotted domain.
	emailOfLen := func(n int) string {
		local := strings.Repeat("a", 64)
		return local + "@" + strings.Repeat("d", n-len(local)-1-len(".com")) + ".com"
	}
	// A link of exactly n characters; multi-byte characters in the path so
	// that counting bytes instead of characters would fail the boundary.
	linkOfLen := func(n int) string {
		prefix := "https://example.com/"
		return prefix + strings.Repeat("é", n-len(prefix))
	}
	six := []string{
		"https://a.example", "https://b.example", "https://c.example",
		"https://d.example", "https://e.example", "https://f.example",
	}

	tests := []struct {
		name   string
		edit   func(a *application.Applicant)
		fields []string // the fields reported; empty means valid
		msg    string   // a substring of the (only) field's message, when set
	}{
		{name: "valid", edit: func(*application.Applicant) {}},
		{name: "only required fields", edit: func(a *application.Applicant) {
			a.Phone, a.CoverLetter, a.Links = "", "", nil
		}},
		{name: "empty links list", edit: func(a *application.Applicant) { a.Links = []string{} }},

		// full_name
		{name: "name missing", edit: func(a *application.Applicant) { a.FullName = "" }, fields: []string{"full_name"}, msg: "required"},
		{name: "name only whitespace", edit: func(a *application.Applicant) { a.FullName = " \t\n " }, fields: []string{"full_name"}, msg: "required"},
		{name: "name at limit in multi-byte characters", edit: func(a *application.Applicant) {
			a.FullName = strings.Repeat("é", application.MaxFullNameLen) // 400 bytes, 200 characters
		}},
		{name: "name one over limit", edit: func(a *application.Applicant) {
			a.FullName = strings.Repeat("é", application.MaxFullNameLen+1)
		}, fields: []string{"full_name"}, msg: "200"},
		{name: "name with surrounding space at limit", edit: func(a *application.Applicant) {
			a.FullName = "  " + strings.Repeat("x", application.MaxFullNameLen) + "  "
		}},
		{name: "name with newline", edit: func(a *application.Applicant) { a.FullName = "Ada\nLovelace" }, fields: []string{"full_name"}, msg: "control"},
		{name: "name with tab", edit: func(a *application.Applicant) { a.FullName = "Ada\tLovelace" }, fields: []string{"full_name"}, msg: "control"},
		{name: "name with NUL", edit: func(a *application.Applicant) { a.FullName = "Ada\x00" + "Lovelace" }, fields: []string{"full_name"}},
		{name: "name with DEL", edit: func(a *application.Applicant) { a.FullName = "Ada\x7fLovelace" }, fields: []string{"full_name"}},
		{name: "name with C1 control", edit: func(a *application.Applicant) { a.FullName = "Ada\u0080Lovelace" }, fields: []string{"full_name"}},
		{name: "name with invalid UTF-8", edit: func(a *application.Applicant) { a.FullName = "Ada \xff" }, fields: []string{"full_name"}},
		{name: "name with non-Latin letters", edit: func(a *application.Applicant) { a.FullName = "Ада Лавлейс 李" }},

		// email
		{name: "email missing", edit: func(a *application.Applicant) { a.Email = "" }, fields: []string{"email"}, msg: "required"},
		{name: "email only whitespace", edit: func(a *application.Applicant) { a.Email = "   " }, fields: []string{"email"}, msg: "required"},
		{name: "email kept as typed in case", edit: func(a *application.Applicant) { a.Email = "Ada@Example.COM" }},
		{name: "email plus tag", edit: func(a *application.Applicant) { a.Email = "ada+jobs@mail.example.co.uk" }},
		{name: "email at byte limit", edit: func(a *application.Applicant) { a.Email = emailOfLen(application.MaxEmailLen) }},
		{name: "email one byte over limit", edit: func(a *application.Applicant) {
			a.Email = emailOfLen(application.MaxEmailLen + 1)
		}, fields: []string{"email"}, msg: "254"},
		{name: "email local part 65 bytes", edit: func(a *application.Applicant) {
			a.Email = strings.Repeat("a", 65) + "@example.com"
		}, fields: []string{"email"}},
		{name: "email without at", edit: func(a *application.Applicant) { a.Email = "ada.example.com" }, fields: []string{"email"}},
		{name: "email without local part", edit: func(a *application.Applicant) { a.Email = "@example.com" }, fields: []string{"email"}},
		{name: "email with display name", edit: func(a *application.Applicant) { a.Email = "A <a@b.co>" }, fields: []string{"email"}},
		{name: "email with quoted display name", edit: func(a *application.Applicant) { a.Email = `"Ada" <ada@example.com>` }, fields: []string{"email"}},
		{name: "email in angle brackets", edit: func(a *application.Applicant) { a.Email = "<ada@example.com>" }, fields: []string{"email"}},
		{name: "email with comment", edit: func(a *application.Applicant) { a.Email = "ada@example.com (Ada)" }, fields: []string{"email"}},
		{name: "two emails", edit: func(a *application.Applicant) { a.Email = "ada@example.com, bob@example.com" }, fields: []string{"email"}},
		{name: "email domain without dot", edit: func(a *application.Applicant) { a.Email = "ada@localhost" }, fields: []string{"email"}},
		{name: "email domain leading dot", edit: func(a *application.Applicant) { a.Email = "ada@.example.com" }, fields: []string{"email"}},
		{name: "email domain trailing dot", edit: func(a *application.Applicant) { a.Email = "ada@example.com." }, fields: []string{"email"}},
		{name: "email domain double dot", edit: func(a *application.Applicant) { a.Email = "ada@example..com" }, fields: []string{"email"}},
		{name: "email with inner space", edit: func(a *application.Applicant) { a.Email = "ada lovelace@example.com" }, fields: []string{"email"}},
		{name: "email with newline", edit: func(a *application.Applicant) { a.Email = "ada@example.com\nBcc: x@example.com" }, fields: []string{"email"}},
		{name: "email with NUL", edit: func(a *application.Applicant) { a.Email = "ada\x00@example.com" }, fields: []string{"email"}},

		// phone
		{name: "phone digits only", edit: func(a *application.Applicant) { a.Phone = "0123456789" }},
		{name: "phone with punctuation", edit: func(a *application.Applicant) { a.Phone = "+1 (555) 010-0000 / 12.3" }},
		{name: "phone four digits", edit: func(a *application.Applicant) { a.Phone = "1234" }},
		{name: "phone three digits", edit: func(a *application.Applicant) { a.Phone = "+(12) 3" }, fields: []string{"phone"}, msg: "4 digits"},
		{name: "phone at limit", edit: func(a *application.Applicant) { a.Phone = strings.Repeat("1", application.MaxPhoneLen) }},
		{name: "phone one over limit", edit: func(a *application.Applicant) {
			a.Phone = strings.Repeat("1", application.MaxPhoneLen+1)
		}, fields: []string{"phone"}, msg: "40"},
		{name: "phone with letters", edit: func(a *application.Applicant) { a.Phone = "555-CALL-ADA" }, fields: []string{"phone"}},
		{name: "phone with extension word", edit: func(a *application.Applicant) { a.Phone = "5550100 ext 12" }, fields: []string{"phone"}},
		{name: "phone with non-ASCII digits", edit: func(a *application.Applicant) { a.Phone = "٠١٢٣٤٥" }, fields: []string{"phone"}},
		{name: "phone with newline", edit: func(a *application.Applicant) { a.Phone = "5550\n100" }, fields: []string{"phone"}},
		{name: "phone only whitespace is absent", edit: func(a *application.Applicant) { a.Phone = "   " }},

		// cover_letter
		{name: "cover letter multiline", edit: func(a *application.Applicant) {
			a.CoverLetter = "Dear team,\r\n\n\tI apply.\nRegards,\nAda"
		}},
		{name: "cover letter at limit in multi-byte characters", edit: func(a *application.Applicant) {
			a.CoverLetter = strings.Repeat("é", application.MaxCoverLetterLen)
		}},
		{name: "cover letter one over limit", edit: func(a *application.Applicant) {
			a.CoverLetter = strings.Repeat("é", application.MaxCoverLetterLen+1)
		}, fields: []string{"cover_letter"}, msg: "10000"},
		{name: "cover letter with NUL", edit: func(a *application.Applicant) { a.CoverLetter = "hello\x00world" }, fields: []string{"cover_letter"}, msg: "control"},
		{name: "cover letter with bell", edit: func(a *application.Applicant) { a.CoverLetter = "hello\aworld" }, fields: []string{"cover_letter"}},
		{name: "cover letter with escape", edit: func(a *application.Applicant) { a.CoverLetter = "hello\x1b[31mworld" }, fields: []string{"cover_letter"}},
		{name: "cover letter with invalid UTF-8", edit: func(a *application.Applicant) { a.CoverLetter = "hello \xc3\x28" }, fields: []string{"cover_letter"}},

		// links
		{name: "five links", edit: func(a *application.Applicant) { a.Links = six[:application.MaxLinks] }},
		{name: "six links", edit: func(a *application.Applicant) { a.Links = six }, fields: []string{"links"}, msg: "5"},
		{name: "six links, one bad, reports only the count", edit: func(a *application.Applicant) {
			a.Links = append([]string{"ftp://bad"}, six[1:]...)
		}, fields: []string{"links"}},
		{name: "link at limit in multi-byte characters", edit: func(a *application.Applicant) {
			a.Links = []string{linkOfLen(application.MaxLinkLen)}
		}},
		{name: "link one over limit", edit: func(a *application.Applicant) {
			a.Links = []string{linkOfLen(application.MaxLinkLen + 1)}
		}, fields: []string{"links[0]"}, msg: "2048"},
		{name: "third link empty", edit: func(a *application.Applicant) {
			a.Links = []string{"https://a.example", "https://b.example", "  "}
		}, fields: []string{"links[2]"}, msg: "empty"},
		{name: "link ftp", edit: func(a *application.Applicant) { a.Links = []string{"https://ok.example", "ftp://files.example"} }, fields: []string{"links[1]"}, msg: "http"},
		{name: "link javascript", edit: func(a *application.Applicant) { a.Links = []string{"javascript:alert(1)"} }, fields: []string{"links[0]"}},
		{name: "link mailto", edit: func(a *application.Applicant) { a.Links = []string{"mailto:ada@example.com"} }, fields: []string{"links[0]"}},
		{name: "link without scheme", edit: func(a *application.Applicant) { a.Links = []string{"example.com/ada"} }, fields: []string{"links[0]"}},
		{name: "link without host", edit: func(a *application.Applicant) { a.Links = []string{"https:///path"} }, fields: []string{"links[0]"}},
		{name: "link with control character", edit: func(a *application.Applicant) { a.Links = []string{"https://example.com/a\x01b"} }, fields: []string{"links[0]"}},
		{name: "link upper-case scheme", edit: func(a *application.Applicant) { a.Links = []string{"HTTPS://example.com/ada"} }},
		{name: "several bad links each named", edit: func(a *application.Applicant) {
			a.Links = []string{"ftp://x.example", "https://ok.example", "", "nope"}
		}, fields: []string{"links[0]", "links[2]", "links[3]"}},

		// several fields at once
		{name: "everything wrong", edit: func(a *application.Applicant) {
			*a = application.Applicant{
				FullName:    "",
				Email:       "A <a@b.co>",
				Phone:       "12",
				CoverLetter: "\x00",
				Links:       []string{"ftp://x.example"},
			}
		}, fields: []string{"full_name", "email", "phone", "cover_letter", "links[0]"}},
		{name: "empty applicant", edit: func(a *application.Applicant) { *a = application.Applicant{} }, fields: []string{"full_name", "email"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := validApplicant()
			tt.edit(&a)
			got := fieldErrors(t, a.Validate())
			if len(tt.fields) == 0 {
				require.Empty(t, got, "want valid")
				return
			}
			require.ElementsMatch(t, tt.fields, fields(got))
			if tt.msg != "" {
				require.Len(t, tt.fields, 1, "msg is checked for single-field cases")
				require.Contains(t, got[tt.fields[0]], tt.msg)
			}
		})
	}
}

func TestApplicantValidateReportsFieldsInFormOrder(t *testing.T) {
	t.Parallel()
	a := application.Applicant{Phone: "x", CoverLetter: "\x00", Links: []string{"", "ftp://x"}}
	err := a.Validate()
	var v *application.ValidationError
	require.ErrorAs(t, err, &v)
	var got []string
	for _, fe := range v.Errors {
		got = append(got, fe.Field)
	}
	require.Equal(t, []string{"full_name", "email", "phone", "cover_letter", "links[0]", "links[1]"}, got)
	require.Equal(t, "invalid fields: full_name, email, phone, cover_letter, links[0], links[1]", err.Error())
}

func TestApplicantValidateTrimsInPlace(t *testing.T) {
	t.Parallel()

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		a := application.Applicant{
			FullName:    "  Ada Lovelace\t",
			Email:       "\n ada@example.com  ",
			Phone:       " +44 20 7946 0958 ",
			CoverLetter: "\n\n  Dear team,\n  I apply.  \n\n",
			Links:       []string{" https://example.com/ada ", "\thttp://github.com/ada\n"},
		}
		require.NoError(t, a.Validate())
		require.Equal(t, application.Applicant{
			FullName:    "Ada Lovelace",
			Email:       "ada@example.com",
			Phone:       "+44 20 7946 0958",
			CoverLetter: "Dear team,\n  I apply.",
			Links:       []string{"https://example.com/ada", "http://github.com/ada"},
		}, a)
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		// Trimmed even when invalid, so a re-rendered form shows what will
		// be checked next time.
		a := application.Applicant{FullName: "  Ada  ", Email: "  nope  ", Links: []string{"  ftp://x  "}}
		require.Error(t, a.Validate())
		require.Equal(t, "Ada", a.FullName)
		require.Equal(t, "nope", a.Email)
		require.Equal(t, []string{"ftp://x"}, a.Links)
	})

	t.Run("whitespace beyond the limit does not count", func(t *testing.T) {
		t.Parallel()
		a := application.Applicant{
			FullName: strings.Repeat(" ", 50) + strings.Repeat("a", application.MaxFullNameLen) + strings.Repeat(" ", 50),
			Email:    "ada@example.com",
		}
		require.NoError(t, a.Validate())
		require.Len(t, a.FullName, application.MaxFullNameLen)
	})
}

func TestApplicantNormalize(t *testing.T) {
	t.Parallel()
	a := application.Applicant{FullName: " a ", Email: " B@C.DE ", Phone: " 1 ", CoverLetter: " c ", Links: []string{" l "}}
	a.Normalize()
	// Normalize trims only: the email keeps its case (NormalizeEmail is
	// what uniqueness uses).
	require.Equal(t, application.Applicant{FullName: "a", Email: "B@C.DE", Phone: "1", CoverLetter: "c", Links: []string{"l"}}, a)
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"ada@example.com", "ada@example.com"},
		{"  Ada@Example.COM ", "ada@example.com"},
		{"\tADA+Jobs@EXAMPLE.com\n", "ada+jobs@example.com"},
		{"Ünal@Example.de", "ünal@example.de"},
		{"", ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, application.NormalizeEmail(tt.in), "NormalizeEmail(%q)", tt.in)
		// Normalising twice changes nothing.
		require.Equal(t, tt.want, application.NormalizeEmail(application.NormalizeEmail(tt.in)))
	}
	require.Equal(t,
		application.NormalizeEmail(" Ada@Example.COM"),
		application.NormalizeEmail("ada@example.com "),
		"the same applicant however typed")
}

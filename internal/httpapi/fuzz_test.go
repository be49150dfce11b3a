package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/intake/intake/internal/application"
)

// FuzzDecodeSubmit feeds arbitrary bodies through the submit endpoint's
// decoding and validation. Whatever the input, it must not panic, and what
// it accepts must satisfy the database's constraints (so a valid request can
// never turn into a 500). `go test` runs the seed corpus; `go test -fuzz
// FuzzDecodeSubmit ./internal/httpapi` explores.
func FuzzDecodeSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"full_name":"Ada Lovelace","email":"ada@example.com"}`,
		`{"full_name":"Ada","email":"ada@example.com","phone":"+44 20 7946 0000","cover_letter":"Hi\nthere","links":["https://a.example"]}`,
		`{"full_name":"  Ada ","email":" ADA@EXAMPLE.COM "}`,
		`{"full_name":"Ada","email":"Ada <ada@example.com>"}`,
		`{"full_name":"A\u0000da","email":"ada@example.com"}`,
		`{"full_name":"Ada","email":"ada@example.com","links":["javascript:alert(1)"]}`,
		`{"full_name":"Ada","email":"ada@example.com"} trailing`,
		`{"full_name":1}`,
		`{"unknown":true}`,
		`[]`, `null`, `"x"`, ``, `{`, "\xff\xfe",
		`{"full_name":"A","email":"first@x.io","email":"second@x.io"}`,
		`{"Full_Name":"A","EMAIL":"a@x.io"}`,
		`{"full_name":"A","email":"a@x.io","links":["https://x.io"],"links":[]}`,
		`{"full_name":"A","email":"a@x.io","lin\u212As":[]}`,
		`{"full_name":"A","email":"a@x.io","links":[{"a":1,"a":2}]}`,
		`{"full_name":"\u200b","email":"a@x.io"}`,
		`{"full_name":"Ann \u202efdp.exe","email":"a@x.io","cover_letter":"x\u2066y"}`,
		`{"full_name":"A","email":"a@x.io","links":["https://u:p@x.io"]}`,
		`{"full_name":"A","email":"a@x.io","answers":{"ok":true,"level":"Senior","start":" May ","why":"a\nb"}}`,
		`{"full_name":"A","email":"a@x.io","answers":{"ok":"yes","level":"senior","start":"a\nb","other":1}}`,
		`{"full_name":"A","email":"a@x.io","answers":{"ok":true,"ok":false}}`,
		`{"full_name":"A","email":"a@x.io","answers":["ok"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req submitRequest
		if err := decodeObject(body, &req); err != nil {
			if _, ok := err.(*badRequestError); !ok {
				t.Fatalf("decode error of unexpected type %T: %v", err, err)
			}
			return
		}
		// Accepted: every top-level key is exactly a field's name, once.
		keys := topLevelKeys(t, body)
		seen := map[string]bool{}
		for _, k := range keys {
			switch k {
			case "full_name", "email", "phone", "cover_letter", "links", "answers":
			default:
				t.Fatalf("accepted the key %q", k)
			}
			if seen[k] {
				t.Fatalf("accepted %q twice", k)
			}
			seen[k] = true
		}
		a := application.Applicant{FullName: req.FullName, Email: req.Email, Phone: req.Phone, CoverLetter: req.CoverLetter, Links: req.Links,
			Answers: req.Answers}
		err := a.ValidateFor(fuzzQuestions)
		if err != nil {
			if _, ok := err.(*application.ValidationError); !ok {
				t.Fatalf("validation error of unexpected type %T: %v", err, err)
			}
			return
		}
		// Accepted: everything must fit the schema's CHECK constraints and
		// be storable text.
		checkLen(t, "full_name", a.FullName, 1, application.MaxFullNameLen)
		for _, f := range append([]string{a.FullName, a.Email, a.Phone}, a.Links...) {
			for _, r := range f {
				// The joiners pass only between letters of scripts spelled
				// with them (application.Applicant's rules).
				if unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d' {
					t.Fatalf("accepted the format character %U in %q", r, f)
				}
			}
		}
		for _, r := range a.CoverLetter {
			if (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
				t.Fatalf("accepted the direction override %U in the cover letter", r)
			}
		}
		checkLen(t, "email", a.Email, 3, application.MaxEmailLen)
		checkLen(t, "email_normalized", application.NormalizeEmail(a.Email), 3, application.MaxEmailLen)
		if a.Phone != "" {
			checkLen(t, "phone", a.Phone, 1, application.MaxPhoneLen)
		}
		if a.CoverLetter != "" {
			checkLen(t, "cover_letter", a.CoverLetter, 1, application.MaxCoverLetterLen)
		}
		if len(a.Links) > application.MaxLinks {
			t.Fatalf("%d links accepted", len(a.Links))
		}
		for _, l := range a.Links {
			checkLen(t, "link", l, 1, application.MaxLinkLen)
		}
		for key, v := range a.Answers {
			switch v := v.(type) {
			case bool:
				if key != "ok" {
					t.Fatalf("accepted a bool for %q", key)
				}
			case string:
				max := application.MaxShortAnswerLen
				if key == "why" {
					max = application.MaxLongAnswerLen
				}
				checkLen(t, "answers."+key, v, 1, max)
				if key == "level" && v != "Junior" && v != "Senior" {
					t.Fatalf("accepted the choice %q", v)
				}
			default:
				t.Fatalf("accepted %T for %q", v, key)
			}
		}
		// The fingerprint is deterministic.
		if string(fingerprint("s", a, nil)) != string(fingerprint("s", a, nil)) {
			t.Fatal("fingerprint not deterministic")
		}
	})
}

// fuzzQuestions are the questions FuzzDecodeSubmit's answers are checked
// against: one of each kind, all optional, so a body without answers still
// reaches the checks of the other fields.
var fuzzQuestions = []application.Question{
	{Key: "ok", Label: "OK?", Kind: application.KindYesNo},
	{Key: "level", Label: "Level", Kind: application.KindChoice, Choices: []string{"Junior", "Senior"}},
	{Key: "start", Label: "Start", Kind: application.KindShortText},
	{Key: "why", Label: "Why", Kind: application.KindLongText},
}

// topLevelKeys lists the keys of the JSON object in body, repeats
// included, in order.
func topLevelKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("accepted a body that is not an object: %q", body)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("accepted malformed JSON %q: %v", body, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("accepted malformed JSON %q: %v", body, err)
		}
	}
	return keys
}

func checkLen(t *testing.T, field, s string, lo, hi int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s accepted invalid UTF-8 %q", field, s)
	}
	for _, r := range s {
		if r == 0 {
			t.Fatalf("%s accepted a NUL byte", field)
		}
	}
	if n := utf8.RuneCountInString(s); n < lo || n > hi {
		t.Fatalf("%s accepted with %d characters, want %d..%d", field, n, lo, hi)
	}
}

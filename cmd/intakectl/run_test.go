package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// ctl runs intakectl against one database, as an operator would.
type ctl struct {
	t     *testing.T
	dbURL string
	env   map[string]string
}

func newCtl(t *testing.T, dbURL string) *ctl {
	return &ctl{t: t, dbURL: dbURL, env: map[string]string{"DATABASE_URL": dbURL, "INTAKE_STATUS_SECRET": testkit.StatusSecret}}
}

func (c *ctl) getenv(name string) string { return c.env[name] }

// run runs one command and returns what it printed and logged.
func (c *ctl) run(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	var out, logs bytes.Buffer
	err = run(context.Background(), args, c.getenv, &out, &logs)
	return out.String(), logs.String(), err
}

// ok runs a command that must succeed and returns its output.
func (c *ctl) ok(args ...string) string {
	c.t.Helper()
	out, logs, err := c.run(args...)
	require.NoError(c.t, err, "intakectl %s\nlogs: %s", strings.Join(args, " "), logs)
	return out
}

// listed runs `postings list` and returns slug → status, checking the
// table's header and that each row shows its title.
func (c *ctl) listed(titles map[string]string) map[string]string {
	c.t.Helper()
	lines := strings.Split(strings.TrimRight(c.ok("postings", "list"), "\n"), "\n")
	require.Equal(c.t, []string{"SLUG", "STATUS", "CREATED", "TITLE"}, strings.Fields(lines[0]))
	got := map[string]string{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		require.GreaterOrEqual(c.t, len(f), 5, "row %q", line) // slug, status, date, time, title...
		got[f[0]] = f[1]
		if want, ok := titles[f[0]]; ok {
			require.Equal(c.t, want, strings.Join(f[4:], " "), "title of %s", f[0])
		}
	}
	return got
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	c := newCtl(t, testkit.EmptyDB(t))

	out, logs, err := c.run("migrate")
	require.NoError(t, err, logs)
	require.Equal(t, "schema up to date\n", out)
	require.Contains(t, logs, "applied River migration")
	require.Contains(t, logs, "applied Intake migration")
	require.NotContains(t, logs, "rivermigrate", "River's own lines repeat Intake's, in another shape")

	// Idempotent: a second run succeeds and applies nothing.
	out, logs, err = c.run("migrate")
	require.NoError(t, err, logs)
	require.Equal(t, "schema up to date\n", out)
	require.NotContains(t, logs, "applied")

	// The schema is usable: postings can be added right away.
	c.ok("postings", "add", "--slug", "first", "--title", "First")
	require.Equal(t, map[string]string{"first": "open"}, c.listed(nil))
}

func TestPostings(t *testing.T) {
	t.Parallel()
	c := newCtl(t, testkit.NewDB(t))

	require.Empty(t, c.listed(nil), "a fresh database has no postings")

	out := c.ok("postings", "add", "--slug", "s", "--title", "T")
	require.Equal(t, "created posting s (open)\n", out)
	out = c.ok("postings", "add", "--slug", "  go-engineer ", "--title", "Senior Go Engineer",
		"--description", "Build Intake.")
	require.Equal(t, "created posting go-engineer (open)\n", out, "the slug is trimmed")

	titles := map[string]string{"s": "T", "go-engineer": "Senior Go Engineer"}
	require.Equal(t, map[string]string{"s": "open", "go-engineer": "open"}, c.listed(titles))

	require.Equal(t, "posting s is closed\n", c.ok("postings", "close", "s"))
	require.Equal(t, map[string]string{"s": "closed", "go-engineer": "open"}, c.listed(titles))

	// Closing twice is harmless.
	require.Equal(t, "posting s is closed\n", c.ok("postings", "close", "s"))

	require.Equal(t, "posting s is open\n", c.ok("postings", "open", "s"))
	require.Equal(t, map[string]string{"s": "open", "go-engineer": "open"}, c.listed(titles))

	// What intakectl wrote is what the API reads.
	pool, err := postgres.NewPool(context.Background(), c.dbURL, nil)
	require.NoError(t, err)
	defer pool.Close()
	p, err := postgres.NewStore(pool).Posting(context.Background(), "go-engineer")
	require.NoError(t, err)
	require.Equal(t, "Build Intake.", p.Description)
	require.Equal(t, application.PostingOpen, p.Status)
	require.Empty(t, p.Location)
	require.Empty(t, p.Team)

	c.ok("postings", "add", "--slug", "sre", "--title", "SRE", "--location", " Berlin or remote ", "--team", "Platform")
	p, err = postgres.NewStore(pool).Posting(context.Background(), "sre")
	require.NoError(t, err)
	require.Equal(t, "Berlin or remote", p.Location)
	require.Equal(t, "Platform", p.Team)
}

func TestPostingsErrors(t *testing.T) {
	t.Parallel()
	c := newCtl(t, testkit.NewDB(t))
	c.ok("postings", "add", "--slug", "taken", "--title", "Taken")

	t.Run("bad slug", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "add", "--slug", "Not A Slug", "--title", "T")
		require.ErrorContains(t, err, "slug")
		var v *application.ValidationError
		require.ErrorAs(t, err, &v)
		require.Equal(t, "slug", v.Errors[0].Field)
		require.Len(t, v.Errors, 1)
	})

	t.Run("missing title", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "add", "--slug", "no-title")
		require.ErrorContains(t, err, "title")
	})

	t.Run("location too long", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "add", "--slug", "far", "--title", "T", "--location", strings.Repeat("x", 201))
		var v *application.ValidationError
		require.ErrorAs(t, err, &v)
		require.Equal(t, "location", v.Errors[0].Field)
	})

	t.Run("control characters", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "add", "--slug", "nul", "--title", "a\x00b", "--description", "a\x00b", "--team", "a\x1bb")
		var v *application.ValidationError
		require.ErrorAs(t, err, &v)
		var got []string
		for _, fe := range v.Errors {
			got = append(got, fe.Field)
		}
		require.ElementsMatch(t, []string{"title", "description", "team"}, got)
	})

	t.Run("slug taken", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "add", "--slug", "taken", "--title", "Again")
		require.ErrorIs(t, err, postgres.ErrSlugTaken)
	})

	t.Run("close unknown slug", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "close", "nope")
		require.EqualError(t, err, `no posting with slug "nope"`)
	})

	t.Run("open unknown slug", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.run("postings", "open", "nope")
		require.EqualError(t, err, `no posting with slug "nope"`)
	})

	// Nothing above changed what is stored.
	t.Cleanup(func() {
		require.Equal(t, map[string]string{"taken": "open"}, c.listed(map[string]string{"taken": "Taken"}))
	})
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCtl(t, testkit.NewDB(t))

	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"postings without subcommand", []string{"postings"}, "postings needs a subcommand"},
		{"unknown postings subcommand", []string{"postings", "delete", "s"}, `unknown postings subcommand "delete"`},
		{"unknown flag", []string{"postings", "add", "--slug", "s", "--title", "T", "--salary", "1"}, "salary"},
		{"stray argument", []string{"postings", "add", "--slug", "s", "--title", "T", "extra"}, "unexpected arguments: extra"},
		{"close without slug", []string{"postings", "close"}, "takes exactly one slug"},
		{"close two slugs", []string{"postings", "close", "a", "b"}, "takes exactly one slug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := c.run(tt.args...)
			var usage usageError
			require.ErrorAs(t, err, &usage, "main exits 2 on a usage error")
			require.Contains(t, err.Error(), tt.msg)
			require.Contains(t, err.Error(), "usage: intakectl", "the usage text is shown")
			require.Empty(t, out)
		})
	}
	// None of them created anything.
	t.Cleanup(func() { require.Empty(t, c.listed(nil)) })
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	c := newCtl(t, "postgres://postgres@127.0.0.1:1/never-used?sslmode=disable")
	c.env["INTAKE_LOG_LEVEL"] = "verbose"
	out, logs, err := c.run("migrate")
	require.ErrorContains(t, err, "INTAKE_LOG_LEVEL")
	var usage usageError
	require.NotErrorAs(t, err, &usage, "a bad environment is not a command-line mistake")
	require.Empty(t, out)
	require.Empty(t, logs)
}

// Every binary validates the whole configuration, intakectl included: a
// missing INTAKE_STATUS_SECRET is found by the first command run, not by
// the first applicant.
func TestMissingStatusSecret(t *testing.T) {
	t.Parallel()
	c := newCtl(t, "postgres://postgres@127.0.0.1:1/never-used?sslmode=disable")
	delete(c.env, "INTAKE_STATUS_SECRET")
	out, logs, err := c.run("migrate")
	require.ErrorContains(t, err, "INTAKE_STATUS_SECRET is required")
	require.Empty(t, out)
	require.Empty(t, logs)
}

// help, --help and -h print the usage on standard output and succeed, with
// or without a configuration (a new user has none yet).
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"status", "--help"}, {"postings", "add", "-h"}} {
		var out, logs bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &out, &logs)
		require.NoError(t, err, "%v", args)
		require.True(t, strings.HasPrefix(out.String(), "usage: intakectl <command> [flags]"), "%v: %s", args, out.String())
		require.Empty(t, logs.String(), "%v", args)
	}
}

func TestPostingsAddQuestionsFile(t *testing.T) {
	t.Parallel()
	c := newCtl(t, testkit.NewDB(t))
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}

	good := write("good.json", `[
		{"key":"work_permit","label":"Work permit?","kind":"yes_no","required":true},
		{"key":"level","label":"Level","kind":"choice","required":false,"choices":["Junior","Senior"],"hint":"Pick one."}
	]`)
	require.Equal(t, "created posting qa (open)\n", c.ok("postings", "add", "--slug", "qa", "--title", "QA", "--questions-file", good))
	pool, err := postgres.NewPool(context.Background(), c.dbURL, nil)
	require.NoError(t, err)
	defer pool.Close()
	p, err := postgres.NewStore(pool).Posting(context.Background(), "qa")
	require.NoError(t, err)
	require.Equal(t, []application.Question{
		{Key: "work_permit", Label: "Work permit?", Kind: application.KindYesNo, Required: true},
		{Key: "level", Label: "Level", Kind: application.KindChoice, Choices: []string{"Junior", "Senior"}, Hint: "Pick one."},
	}, p.Questions)

	_, _, err = c.run("postings", "add", "--slug", "bad-kind", "--title", "T", "--questions-file",
		write("kind.json", `[{"key":"q","label":"Q","kind":"date"}]`))
	var v *application.ValidationError
	require.ErrorAs(t, err, &v)
	require.Equal(t, "questions[0].kind", v.Errors[0].Field)

	_, _, err = c.run("postings", "add", "--slug", "typo", "--title", "T", "--questions-file",
		write("typo.json", `[{"key":"q","label":"Q","kind":"yes_no","requried":true}]`))
	require.ErrorContains(t, err, "requried", "a misspelt field is refused, not dropped")

	_, _, err = c.run("postings", "add", "--slug", "two", "--title", "T", "--questions-file", write("two.json", `[] []`))
	require.ErrorContains(t, err, "one JSON list")

	_, _, err = c.run("postings", "add", "--slug", "missing", "--title", "T", "--questions-file", filepath.Join(dir, "none.json"))
	require.ErrorIs(t, err, os.ErrNotExist)

	require.Equal(t, map[string]string{"qa": "open"}, c.listed(map[string]string{"qa": "QA"}), "only the good posting was stored")
}

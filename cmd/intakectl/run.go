package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
)

const usage = `usage: intakectl <command> [flags]

commands:
  migrate                                   create the database if missing, apply River's and
                                            Intake's migrations (idempotent)
  postings add --slug S --title T [--description D] [--location L] [--team T]
               [--questions-file F]         create an open posting; F holds its questions as a
                                            JSON list (fixed once created)
  postings close S                          stop taking applications for S
  postings open S                           take applications for S again
  postings list                             list every posting
  status [--json] [--stuck-after D] [--seen-within D]
                                            outbox backlog, jobs, deliveries, workers; exit 1 with
                                            a one-line reason when something is stuck
  deliveries list [--json]                  failed confirmation emails
  deliveries retry (--all | ID...)          queue failed confirmations again (never re-mails a sent one)
  deliveries ack (--all | ID...)            mark failed confirmations as looked at
  analytics retry [--discarded]             run retrying analytics jobs now (after fixing the http
                                            sink); --discarded: the discarded and cancelled ones too
  outbox list [--json] [--all [--limit N]]  quarantined outbox events (events that cannot become
                                            jobs) with their error; --all adds the oldest N waiting
  outbox retry (--all | ID...)              release quarantined events for the relay's next round
                                            (after fixing their cause)
  tokens create --name N --role viewer|admin [--expires D]
                                            mint an admin API token (audited); the token alone on the
                                            last line of stdout, details on stderr; D like 720h or 30d
  tokens list [--json]                      every token (never its text), revoked ones included
  tokens revoke ID                          revoke a token; it fails on every API replica at once
  audit [--since T] [--actor A] [--action X] [--target ID] [--limit N] [--json]
                                            the audit log, newest first; T an RFC 3339 time or 24h, 7d;
                                            --json: one object a line (at, actor, action, target, outcome)
  applications list [--job S] [--limit N] [--json]
                                            newest applications (audited: reads personal data)
  applications show ID                      one application with its email and analytics state (audited)
  applications cv ID [--out F]              write the application's CV to F (default: its file name in
                                            the current directory, never over a file; - for stdout) (audited)
  applications erase (ID | --email E) --reason R
                                            erase the applicant's personal data (one application, or
                                            every one of address E on every posting); audited with R
  report [--week YYYY-Www] [--json] [--fresh]
                                            the weekly report (default: the current week): the stored
                                            one, else built now from the data (neither stored nor
                                            emailed); --fresh: built now even when one is stored
  health URL [--timeout D]                  GET URL; exit 0 on a 2xx answer (container health checks)
  dev [--smtp-addr A] [--mailbox-addr A] [--no-sample-postings]
                                            run the whole system locally: migrate, sample postings,
                                            a mail catcher with a mailbox page, intake-api and
                                            intake-worker (restarted if they die) until Ctrl-C
  help                                      this text (so do -h and --help after any command)`

// usageError is a mistake in the command line; main exits 2 with it.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + "\n\n" + usage }

// run dispatches one command; results go to stdout, logs to stderr. Each command is a small function over the
// same packages the servers use.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	// Help needs no configuration: a new user asks before having one.
	if args[0] == "help" || slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if args[0] == "health" { // needs no configuration and no database
		return health(ctx, args[1:])
	}
	if args[0] == "dev" { // dev makes a status secret for its children when none is set
		getenv = config.WithGeneratedStatusSecret(getenv)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := logging.New(stderr, cfg.LogLevel, "intakectl")

	if args[0] == "dev" { // before the pool: dev creates the database itself
		return dev(ctx, cfg, getenv("INTAKE_STATUS_SECRET"), args[1:], stdout)
	}
	if args[0] == "migrate" {
		created, err := migrate.EnsureDatabase(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintln(stdout, "created the database")
		}
	}
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: 2, ApplicationName: "intakectl"})
	if err != nil {
		return err
	}
	defer pool.Close()
	store := postgres.NewStore(pool)
	caller := cliCaller(getenv)

	switch args[0] {
	case "migrate":
		m, err := migrate.New(pool, logger)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Up(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "schema up to date")
		return nil
	case "postings":
		return postings(ctx, store, caller, args[1:], stdout)
	case "status":
		return status(ctx, store, cfg.ReconcileAfter, args[1:], stdout)
	case "deliveries":
		return deliveries(ctx, cfg, pool, store, caller, args[1:], stdout)
	case "analytics":
		return analyticsJobs(ctx, pool, store, caller, args[1:], stdout)
	case "outbox":
		return outboxEvents(ctx, store, caller, args[1:], stdout)
	case "tokens":
		return tokens(ctx, store, caller, args[1:], stdout, stderr)
	case "audit":
		return auditLog(ctx, store, caller, args[1:], stdout)
	case "applications":
		return applications(ctx, store, caller, args[1:], stdout)
	case "report":
		return report(ctx, store, time.Now(), args[1:], stdout)
	default:
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// readQuestions reads a JSON list of questions from the file at path,
// strictly: a misspelt field is an error, not a question without it.
func readQuestions(path string) ([]application.Question, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var qs []application.Question
	if err := dec.Decode(&qs); err != nil {
		return nil, fmt.Errorf("--questions-file %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("--questions-file %s: must hold one JSON list and nothing after it", path)
	}
	return qs, nil
}

// postings manages postings; every change is audited on behalf of caller.
func postings(ctx context.Context, store *postgres.Store, caller access.Caller, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"postings needs a subcommand: add, close, open or list"}
	}
	switch args[0] {
	case "add":
		fs := flag.NewFlagSet("postings add", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var p application.NewPosting
		fs.StringVar(&p.Slug, "slug", "", "URL name, like senior-go-engineer")
		fs.StringVar(&p.Title, "title", "", "title shown to applicants")
		fs.StringVar(&p.Description, "description", "", "description shown to applicants")
		fs.StringVar(&p.Location, "location", "", "where the job is based, like \"Berlin or remote\" (optional)")
		fs.StringVar(&p.Team, "team", "", "the team it joins, like \"Engineering\" (optional)")
		questionsFile := fs.String("questions-file", "", "JSON list of the posting's questions")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if fs.NArg() > 0 {
			return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
		}
		if *questionsFile != "" {
			qs, err := readQuestions(*questionsFile)
			if err != nil {
				return err
			}
			p.Questions = qs
		}
		if err := p.Validate(); err != nil {
			return err
		}
		created, err := store.AddPosting(ctx, caller, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created posting %s (%s)\n", created.Slug, created.Status)
		return nil
	case "close", "open":
		if len(args) != 2 {
			return usageError{"postings " + args[0] + " takes exactly one slug"}
		}
		status := application.PostingClosed
		if args[0] == "open" {
			status = application.PostingOpen
		}
		p, err := store.UpdatePosting(ctx, caller, args[1], application.PostingPatch{Status: &status})
		if errors.Is(err, application.ErrNotFound) {
			return fmt.Errorf("no posting with slug %q", args[1])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "posting %s is %s\n", p.Slug, p.Status)
		return nil
	case "list":
		list, err := store.Postings(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SLUG\tSTATUS\tCREATED\tTITLE")
		for _, p := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Slug, p.Status, p.CreatedAt.UTC().Format("2006-01-02 15:04"), p.Title)
		}
		return tw.Flush()
	default:
		return usageError{fmt.Sprintf("unknown postings subcommand %q", args[0])}
	}
}

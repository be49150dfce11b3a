package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// cliCaller is who the audit log says acted: the operating-system user
// running intakectl. Database access is the root of trust, so intakectl
// needs no token and no role limits it.
func cliCaller(getenv func(string) string) access.Caller {
	name := getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return access.Caller{Actor: access.CLIActor(name)}
}

// tokens creates, lists and revokes admin API tokens.
func tokens(ctx context.Context, store *postgres.Store, caller access.Caller, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"tokens needs a subcommand: create, list or revoke"}
	}
	fs := flag.NewFlagSet("tokens "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "what the token is for (create)")
	role := fs.String("role", "", "viewer or admin (create)")
	expires := fs.String("expires", "", "lifetime, like 720h or 30d (create; default: no expiry)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	switch args[0] {
	case "create":
		if fs.NArg() > 0 {
			return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
		}
		spec := access.NewTokenSpec{Name: *name, Role: access.Role(*role)}
		if *expires != "" {
			d, err := parseLifetime(*expires)
			if err != nil {
				return usageError{"--expires " + err.Error()}
			}
			at := time.Now().Add(d)
			spec.ExpiresAt = &at
		}
		if err := spec.Validate(time.Now()); err != nil {
			return fmt.Errorf("--%s", strings.TrimPrefix(err.Error(), "invalid fields: "))
		}
		tok, secret, err := store.CreateToken(ctx, caller, spec)
		if err != nil {
			return err
		}
		expiry := "never"
		if tok.ExpiresAt != nil {
			expiry = tok.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "created token %s (name %q, role %s, expires %s); it is shown only now:\n", tok.ID, tok.Name, tok.Role, expiry)
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		list, err := store.Tokens(ctx, caller)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(nonNil(list))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED BY\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.CreatedBy, t.CreatedAt.UTC().Format("2006-01-02 15:04"),
				stamp(t.ExpiresAt), stamp(t.LastUsedAt), stamp(t.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageError{"tokens revoke takes exactly one token id"}
		}
		tok, err := store.RevokeToken(ctx, caller, fs.Arg(0))
		if errors.Is(err, application.ErrNotFound) {
			return fmt.Errorf("no token with id %q", fs.Arg(0))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token %s (%s) revoked at %s\n", tok.ID, tok.Name, stamp(tok.RevokedAt))
		return nil
	default:
		return usageError{fmt.Sprintf("unknown tokens subcommand %q", args[0])}
	}
}

// parseLifetime reads a Go duration or a whole number of days ("30d").
func parseLifetime(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, nerr := strconv.Atoi(days)
		d, err = time.Duration(n)*24*time.Hour, nerr
	}
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive duration, like 720h or 30d")
	}
	return d, nil
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// auditLog prints the audit log, newest first.
func auditLog(ctx context.Context, store *postgres.Store, caller access.Caller, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f access.AuditFilter
	fs.StringVar(&f.Actor, "actor", "", "only this actor (token:<id>, cli:<user>, anonymous, system)")
	fs.StringVar(&f.Action, "action", "", "only this action (e.g. applications.read)")
	fs.StringVar(&f.Target, "target", "", "only this target id")
	since := fs.String("since", "", "only entries since this time (RFC 3339) or this long ago (24h, 7d)")
	limit := fs.Int("limit", 1000, "at most this many entries")
	asJSON := fs.Bool("json", false, "one JSON object a line")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	if *limit < 1 {
		return usageError{"--limit must be at least 1"}
	}
	if *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			d, derr := parseLifetime(*since)
			if derr != nil {
				return usageError{"--since must be an RFC 3339 time or a duration like 24h or 7d"}
			}
			t = time.Now().Add(-d)
		}
		f.Since = &t
	}
	entries, err := store.AuditEntries(ctx, caller, f, 0, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range entries {
			if err := enc.Encode(map[string]any{"at": e.At.UTC(), "actor": e.Actor, "action": e.Action,
				"target_type": e.TargetType, "target": e.TargetID, "outcome": e.Outcome, "request_id": e.RequestID,
				"detail": e.Detail}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tACTOR\tACTION\tTARGET\tOUTCOME\tREQUEST")
	for _, e := range entries {
		target := e.TargetID
		if e.TargetType != "" {
			target = e.TargetType + ":" + e.TargetID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05"), e.Actor, e.Action, target, e.Outcome, e.RequestID)
	}
	return tw.Flush()
}

// applications lists, shows and erases applications for operators at the
// database; every one is audited.
func applications(ctx context.Context, store *postgres.Store, caller access.Caller, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"applications needs a subcommand: list, show, cv or erase"}
	}
	fs := flag.NewFlagSet("applications "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	job := fs.String("job", "", "only this posting's applications (list)")
	limit := fs.Int("limit", 50, "at most this many, newest first (list)")
	asJSON := fs.Bool("json", false, "print JSON")
	email := fs.String("email", "", "erase every application of this address, on every posting (erase)")
	reason := fs.String("reason", "", "why, for the audit log: a ticket number, never personal data (erase)")
	out := fs.String("out", "", "write the CV to this file, - for standard output (cv)")
	// Flags may follow the id (applications erase ID --reason R): the
	// flag package stops at the first argument, so parse on after each.
	var positional []string
	for rest := args[1:]; ; rest = fs.Args()[1:] {
		if err := fs.Parse(rest); err != nil {
			return usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
	}
	switch args[0] {
	case "erase":
		return eraseApplications(ctx, store, caller, positional, *email, *reason, stdout)
	case "cv":
		if len(positional) != 1 {
			return usageError{"applications cv takes exactly one application id"}
		}
		return writeCV(ctx, store, caller, positional[0], *out, stdout)
	case "list":
		if len(positional) > 0 {
			return usageError{"applications list takes no arguments"}
		}
		if *limit < 1 {
			return usageError{"--limit must be at least 1"}
		}
		list, err := store.ApplicationsPage(ctx, caller, *job, nil, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(nonNil(list))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tJOB\tRECEIVED\tNAME\tEMAIL")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.PostingSlug, a.ReceivedAt.UTC().Format("2006-01-02 15:04:05"), a.FullName, a.Email)
		}
		return tw.Flush()
	case "show":
		if len(positional) != 1 {
			return usageError{"applications show takes exactly one application id"}
		}
		r, err := store.ApplicationRecord(ctx, caller, positional[0])
		if errors.Is(err, application.ErrNotFound) {
			return fmt.Errorf("no application with id %q", positional[0])
		}
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, kv := range [][2]string{
			{"id", r.ID}, {"job", r.PostingSlug}, {"received", r.ReceivedAt.UTC().Format(time.RFC3339)},
			{"name", r.Applicant.FullName}, {"email", r.Applicant.Email}, {"phone", r.Applicant.Phone},
			{"links", strings.Join(r.Applicant.Links, " ")},
			{"email state", fmt.Sprintf("%s (%d attempts, last %s)", r.Email.State, r.Email.Attempts, stamp(r.Email.LastAttemptAt))},
			{"analytics", stamp(r.AnalyticsRecordedAt)},
			{"cv", cvLine(r.CV)},
		} {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(r.Applicant.Answers) > 0 {
			fmt.Fprintln(stdout, "\nanswers")
			for _, key := range slices.Sorted(maps.Keys(r.Applicant.Answers)) {
				fmt.Fprintf(stdout, "%s: %s\n", key, answerText(r.Applicant.Answers[key]))
			}
		}
		if r.Applicant.CoverLetter != "" {
			fmt.Fprintf(stdout, "\n%s\n", r.Applicant.CoverLetter)
		}
		return nil
	default:
		return usageError{fmt.Sprintf("unknown applications subcommand %q", args[0])}
	}
}

// cvLine describes an application's CV in one line for applications show.
func cvLine(f *application.FileInfo) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s, %d bytes, sha256 %x)", f.Filename, f.ContentType, f.Size, f.SHA256)
}

// writeCV writes an application's CV (the download is audited as
// applications.cv_download) to out: standard output for "-", else a new
// file (never over an existing one), by default the stored name in the
// current directory.
func writeCV(ctx context.Context, store *postgres.Store, caller access.Caller, id, out string, stdout io.Writer) error {
	f, err := store.ApplicationCV(ctx, caller, id)
	if errors.Is(err, application.ErrNotFound) {
		return fmt.Errorf("no CV for an application with id %q", id)
	}
	if err != nil {
		return err
	}
	if out == "-" {
		_, err := stdout.Write(f.Content)
		return err
	}
	if out == "" {
		out = f.Filename // sanitised at upload: a base name, no path
	}
	file, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := file.Write(f.Content); err != nil {
		file.Close()
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %d bytes)\n", out, f.ContentType, len(f.Content))
	return nil
}

// eraseApplications erases one application by id, or every application of
// an address; --reason is required and goes to the audit log.
func eraseApplications(ctx context.Context, store *postgres.Store, caller access.Caller, ids []string, email, reason string, stdout io.Writer) error {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return usageError{"applications erase needs --reason (a ticket number or a short note, never personal data)"}
	case len(reason) > 200:
		return usageError{"--reason must be at most 200 bytes"}
	case strings.Contains(reason, "@"):
		return usageError{"--reason must not hold an email address: the audit log keeps no personal data"}
	case email == "" && len(ids) != 1:
		return usageError{"applications erase takes exactly one application id, or --email E"}
	case email != "" && len(ids) > 0:
		return usageError{"applications erase takes an id or --email, not both"}
	}
	if email == "" {
		err := store.EraseApplication(ctx, caller, ids[0], reason)
		if errors.Is(err, application.ErrNotFound) {
			return fmt.Errorf("no application with id %q", ids[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "application %s erased\n", ids[0])
		return nil
	}
	normalized, err := application.ErasureEmail(email)
	if err != nil {
		return fmt.Errorf("--%s", strings.TrimPrefix(err.Error(), "invalid fields: "))
	}
	n, err := store.EraseByEmail(ctx, caller, normalized, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "erased %d applications\n", n)
	return nil
}

// answerText is an answer as a person reads it: yes or no for a yes_no
// question, the text otherwise.
func answerText(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "yes"
		}
		return "no"
	default:
		return fmt.Sprint(v)
	}
}

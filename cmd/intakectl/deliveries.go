package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
)

// deliveries lists, acknowledges and retries failed confirmation emails.
func deliveries(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, store *postgres.Store, caller access.Caller, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"deliveries needs a subcommand: list, ack or retry"}
	}
	fs := flag.NewFlagSet("deliveries "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON (list)")
	all := fs.Bool("all", false, "every failed delivery (ack, retry)")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	ids := fs.Args()

	switch args[0] {
	case "list":
		failed, err := store.FailedDeliveries(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(nonNil(failed))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APPLICATION\tATTEMPTS\tCLASS\tSMTP CODE\tLAST ATTEMPT\tACKNOWLEDGED")
		for _, d := range failed {
			code, last, acked := "-", "-", "no"
			if d.SMTPCode != 0 {
				code = fmt.Sprint(d.SMTPCode)
			}
			if d.LastAttemptAt != nil {
				last = d.LastAttemptAt.UTC().Format("2006-01-02 15:04:05")
			}
			if d.AcknowledgedAt != nil {
				acked = d.AcknowledgedAt.UTC().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", d.ApplicationID, d.Attempts, d.ErrorClass, code, last, acked)
		}
		return tw.Flush()

	case "ack":
		if err := needTargets(*all, ids, "application ids", "every failed delivery"); err != nil {
			return err
		}
		n, err := store.AcknowledgeFailedDeliveries(ctx, caller, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "acknowledged %d failed deliveries\n", n)
		return nil

	case "retry":
		if err := needTargets(*all, ids, "application ids", "every failed delivery"); err != nil {
			return err
		}
		// An insert-only client: it never works jobs, the workers do.
		inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
		if err != nil {
			return err
		}
		maxAttempts := job.RetryFromConfig(cfg).MaxAttempts()
		requeued, err := store.RequeueFailedDeliveries(ctx, caller, ids, func(ctx context.Context, tx pgx.Tx, appIDs []string) error {
			params := make([]river.InsertManyParams, len(appIDs))
			for i, id := range appIDs {
				params[i] = job.ConfirmationEmail(id, maxAttempts)
			}
			_, err := inserter.InsertManyTx(ctx, tx, params)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "queued %d failed deliveries again\n", len(requeued))
		return nil

	default:
		return usageError{fmt.Sprintf("unknown deliveries subcommand %q", args[0])}
	}
}

// needTargets insists on explicit ids or --all, so a bare command never
// acts on everything by accident. what names the ids ("application ids"),
// every what --all means ("every failed delivery").
func needTargets(all bool, ids []string, what, every string) error {
	switch {
	case all && len(ids) > 0:
		return usageError{"give " + what + " or --all, not both"}
	case !all && len(ids) == 0:
		return usageError{"give " + what + ", or --all for " + every}
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres"
)

// outboxEvents lists quarantined outbox events and releases them for another try.
func outboxEvents(ctx context.Context, store *postgres.Store, caller access.Caller, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"outbox needs a subcommand: list or retry"}
	}
	fs := flag.NewFlagSet("outbox "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON (list)")
	all := fs.Bool("all", false, "list: also the events waiting for the relay; retry: every quarantined event")
	limit := fs.Int("limit", 100, "list --all: at most this many waiting events, oldest first")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	ids := fs.Args()

	switch args[0] {
	case "list":
		if len(ids) > 0 {
			return usageError{"outbox list takes no arguments"}
		}
		if *limit < 1 {
			return usageError{"--limit must be at least 1"}
		}
		waiting := 0
		if *all {
			waiting = *limit
		}
		events, err := store.OutboxEvents(ctx, waiting)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(nonNil(events))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT\tKIND\tAPPLICATION\tCREATED\tQUARANTINED\tERROR")
		for _, e := range events {
			quarantined, why := "-", "(waiting for the relay)"
			if e.QuarantinedAt != nil {
				quarantined, why = e.QuarantinedAt.UTC().Format("2006-01-02 15:04:05"), e.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Kind, e.AggregateID, e.CreatedAt.UTC().Format("2006-01-02 15:04:05"), quarantined, why)
		}
		return tw.Flush()

	case "retry":
		if err := needTargets(*all, ids, "event ids", "every quarantined event"); err != nil {
			return err
		}
		released, err := store.ReleaseQuarantined(ctx, caller, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released %d quarantined events; the relay tries them again at its next round\n", len(released))
		if skipped := len(ids) - len(released); skipped > 0 {
			fmt.Fprintf(stdout, "%d of the given events were not quarantined (released already, or dispatched)\n", skipped)
		}
		return nil

	default:
		return usageError{fmt.Sprintf("unknown outbox subcommand %q", args[0])}
	}
}

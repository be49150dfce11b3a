package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// report prints one week's report: the stored one when the leader made it,
// else (or with --fresh) one built now from the data, which is neither
// stored nor emailed. The week defaults to the current one (a preview).
func report(ctx context.Context, store *postgres.Store, now time.Time, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	weekFlag := fs.String("week", application.WeekOf(now).String(), "ISO week, like 2026-W48")
	asJSON := fs.Bool("json", false, "print JSON")
	fresh := fs.Bool("fresh", false, "build from the data now even when a stored report exists")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	week, err := application.ParseWeek(*weekFlag)
	if err != nil {
		return usageError{"--week must be an ISO week like 2026-W48"}
	}
	if week.Start().After(now) {
		return fmt.Errorf("week %s has not started yet", week)
	}
	var r application.StoredReport
	if !*fresh {
		r, err = store.StoredReport(ctx, week)
	}
	if *fresh || errors.Is(err, application.ErrNotFound) {
		r.Report, err = store.BuildReport(ctx, week, now)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	return printReport(stdout, r)
}

func printReport(w io.Writer, r application.StoredReport) error {
	state := "built now from the data, not stored"
	switch {
	case r.Stored && r.EmailedAt != nil:
		state = "stored, emailed " + r.EmailedAt.UTC().Format("2006-01-02 15:04 UTC")
	case r.Stored:
		state = "stored, not emailed"
	case !r.Final:
		state = "preview: the week is not over"
	}
	fmt.Fprintf(w, "WEEK %s (%s to %s UTC), figures as of %s; %s\n\n", r.Week,
		r.From.UTC().Format("2006-01-02"), r.To.UTC().AddDate(0, 0, -1).Format("2006-01-02"),
		r.BuiltAt.UTC().Format("2006-01-02 15:04 UTC"), state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POSTING\tRECEIVED\tSENT\tRETRYING\tFAILED\tPENDING\tANALYTICS\tP50\tP95\tERASURES\t")
	row := func(name string, f application.ReportFigures) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t\n", name, f.Received, f.ConfirmationsSent,
			f.ConfirmationsRetrying, f.ConfirmationsFailed, f.ConfirmationsPending, f.AnalyticsRecorded,
			secondsOf(f.EmailAcceptedP50), secondsOf(f.EmailAcceptedP95), f.Erasures)
	}
	for _, p := range r.Postings {
		row(p.Slug, p.ReportFigures)
	}
	row("TOTAL", r.Totals)
	return tw.Flush()
}

// secondsOf shows a percentile, "-" when there is none.
func secondsOf(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 2, 64) + "s"
}

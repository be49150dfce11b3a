package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intake/intake/internal/analytics"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
)

// stuckError is a status that needs an operator: main exits 1 with its
// one-line reason.
type stuckError struct{ reason string }

func (e stuckError) Error() string { return "stuck: " + e.reason }

// status prints what an operator checks after a crash and decides whether
// something is stuck. reconcileAfter is the reconciler's threshold, which
// the count of stale events uses too.
func status(ctx context.Context, store *postgres.Store, reconcileAfter time.Duration, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	stuckAfter := fs.Duration("stuck-after", time.Minute, "work waiting longer than this is stuck")
	// Workers report every INTAKE_HEARTBEAT_INTERVAL (2 s): a row this old
	// means the worker is gone, whatever it still says, and with any
	// interval up to 5 s it is three missed heartbeats or more.
	seenWithin := fs.Duration("seen-within", 15*time.Second, "a worker counts as running if it reported within this")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"status takes no arguments"}
	}

	report, err := store.Status(ctx, *seenWithin)
	if err != nil {
		return err
	}
	now := time.Now()
	if report.Reconciler, err = store.Reconciler(ctx, now.Add(-24*time.Hour), now.Add(-reconcileAfter)); err != nil {
		return err
	}
	reasons := stuckReasons(report, *stuckAfter, *seenWithin)
	if *asJSON {
		if err := writeStatusJSON(stdout, report, reasons); err != nil {
			return err
		}
	} else if err := writeStatusText(stdout, report, reasons); err != nil {
		return err
	}
	if len(reasons) > 0 {
		reason := reasons[0]
		if len(reasons) > 1 {
			reason += fmt.Sprintf(" (and %d more)", len(reasons)-1)
		}
		return stuckError{reason}
	}
	return nil
}

// stuckReasons lists what needs an operator, most fundamental first.
func stuckReasons(r postgres.StatusReport, stuckAfter, seenWithin time.Duration) []string {
	var reasons []string
	waiting := r.OutboxUndispatched > 0
	for _, j := range r.Jobs {
		if j.State == "available" && j.OldestAvailableSeconds > 0 {
			waiting = true
		}
	}
	if waiting && len(r.Workers) == 0 {
		reasons = append(reasons, fmt.Sprintf("no worker reported in the last %s and work is waiting: start intake-worker", seenWithin))
	}
	if age := seconds(r.OutboxOldestSeconds); r.OutboxUndispatched > 0 && age > stuckAfter {
		reasons = append(reasons, fmt.Sprintf("outbox: %d events undispatched, the oldest for %s", r.OutboxUndispatched, age))
	}
	if q := r.OutboxQuarantine; q.Events > 0 {
		reasons = append(reasons, fmt.Sprintf("outbox: %d events quarantined (they cannot become jobs), the first %s ago (intakectl outbox list, fix, then intakectl outbox retry)", q.Events, seconds(q.OldestSeconds)))
	}
	for _, j := range r.Jobs {
		if age := seconds(j.OldestAvailableSeconds); j.State == "available" && age > stuckAfter {
			reasons = append(reasons, fmt.Sprintf("jobs: %d %s jobs waiting to run, the oldest for %s (workers busy or down)", j.Jobs, j.Kind, age))
		}
		if age := seconds(j.OldestRunningSeconds); j.State == "running" && age > stuckAfter {
			reasons = append(reasons, fmt.Sprintf("jobs: a %s job running for %s (its worker probably died: another worker rescues it once its heartbeat is INTAKE_WORKER_DEAD_AFTER old, River after INTAKE_RESCUE_AFTER)", j.Kind, age))
		}
	}
	for _, d := range r.Deliveries {
		if d.Unacknowledged > 0 {
			reasons = append(reasons, fmt.Sprintf("deliveries: %d confirmation emails failed and not yet looked at (intakectl deliveries list, then retry or ack)", d.Unacknowledged))
		}
	}
	if n := analyticsRetrying(r); n > 0 && analytics.Misconfigured(r.AnalyticsLastError) {
		reasons = append(reasons, fmt.Sprintf("analytics: %s; fix the sink's configuration, then run intakectl analytics retry", analyticsLine(n, r.AnalyticsLastError)))
	}
	return reasons
}

// analyticsRetrying counts the analytics jobs waiting for their next try.
func analyticsRetrying(r postgres.StatusReport) int64 {
	var n int64
	for _, j := range r.Jobs {
		if j.Kind == (job.AnalyticsEventArgs{}).Kind() && j.State == "retryable" {
			n += j.Jobs
		}
	}
	return n
}

func analyticsLine(retrying int64, lastError string) string {
	line := fmt.Sprintf("%d jobs retrying", retrying)
	if lastError != "" {
		line += ", last error: " + lastError
	}
	return line
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}

func writeStatusText(w io.Writer, r postgres.StatusReport, reasons []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "OUTBOX\t%d undispatched", r.OutboxUndispatched)
	if r.OutboxUndispatched > 0 {
		fmt.Fprintf(tw, ", oldest %s", seconds(r.OutboxOldestSeconds))
	}
	if q := r.OutboxQuarantine; q.Events > 0 {
		fmt.Fprintf(tw, "; %d quarantined, the first %s ago", q.Events, seconds(q.OldestSeconds))
	}
	fmt.Fprintln(tw)

	ids := make([]string, len(r.Workers))
	for i, wk := range r.Workers {
		ids[i] = fmt.Sprintf("%s (pid %d, seen %s ago)", wk.Hostname, wk.PID, time.Since(wk.LastSeenAt).Round(time.Second))
	}
	fmt.Fprintf(tw, "WORKERS\t%d running\t%s\n", len(r.Workers), strings.Join(ids, ", "))
	if n := analyticsRetrying(r); n > 0 {
		fmt.Fprintf(tw, "ANALYTICS\t%s\n", analyticsLine(n, r.AnalyticsLastError))
	}
	if rc := r.Reconciler; rc.Reconciled > 0 || rc.StaleEvents > 0 {
		fmt.Fprintf(tw, "RECONCILE\t%d confirmations re-enqueued (%d in the last 24h); %d events undispatched past its threshold\n",
			rc.Reconciled, rc.Recent, rc.StaleEvents)
	}

	fmt.Fprintln(tw, "\nJOB KIND\tSTATE\tJOBS\tOLDEST WAITING\tOLDEST RUNNING")
	for _, j := range r.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", j.Kind, j.State, j.Jobs, ageOrDash(j.OldestAvailableSeconds), ageOrDash(j.OldestRunningSeconds))
	}

	fmt.Fprintln(tw, "\nDELIVERY STATE\tEMAILS\tNOT ACKNOWLEDGED")
	for _, d := range r.Deliveries {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", d.State, d.Deliveries, countOrDash(d.Unacknowledged))
	}
	fmt.Fprintln(tw)
	if len(reasons) == 0 {
		fmt.Fprintln(tw, "STATUS\tOK")
	} else {
		for _, reason := range reasons {
			fmt.Fprintf(tw, "STUCK\t%s\n", reason)
		}
	}
	return tw.Flush()
}

func ageOrDash(s float64) string {
	if s <= 0 {
		return "-"
	}
	return seconds(s).String()
}

func countOrDash(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func writeStatusJSON(w io.Writer, r postgres.StatusReport, reasons []string) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK         bool                     `json:"ok"`
		Stuck      []string                 `json:"stuck"`
		Outbox     statusOutbox             `json:"outbox"`
		Workers    []postgres.Worker        `json:"workers"`
		Jobs       []postgres.JobCount      `json:"jobs"`
		Deliveries []postgres.DeliveryCount `json:"deliveries"`
		Analytics  struct {
			Retrying  int64  `json:"retrying"`
			LastError string `json:"last_error"`
		} `json:"analytics"`
		Reconciler postgres.ReconcilerFinds `json:"reconciler"`
	}{
		OK:    len(reasons) == 0,
		Stuck: nonNil(reasons),
		Outbox: statusOutbox{
			Undispatched:             r.OutboxUndispatched,
			OldestSeconds:            r.OutboxOldestSeconds,
			Quarantined:              r.OutboxQuarantine.Events,
			QuarantinedOldestSeconds: r.OutboxQuarantine.OldestSeconds,
		},
		Workers:    nonNil(r.Workers),
		Jobs:       nonNil(r.Jobs),
		Deliveries: nonNil(r.Deliveries),
		Analytics: struct {
			Retrying  int64  `json:"retrying"`
			LastError string `json:"last_error"`
		}{analyticsRetrying(r), r.AnalyticsLastError},
		Reconciler: r.Reconciler,
	})
}

// statusOutbox is the outbox in `status --json`.
type statusOutbox struct {
	Undispatched  int64   `json:"undispatched"`
	OldestSeconds float64 `json:"oldest_seconds"`
	// Quarantined events are not in Undispatched: the relay no longer tries
	// them. QuarantinedOldestSeconds is the age of the first quarantine.
	Quarantined              int64   `json:"quarantined"`
	QuarantinedOldestSeconds float64 `json:"quarantined_oldest_seconds"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

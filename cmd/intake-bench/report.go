package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Report is everything one run measured; it is the JSON file.
// Latencies are in milliseconds, rates per second, memory in MiB.
type Report struct {
	StartedAt time.Time      `json:"started_at"`
	Seconds   float64        `json:"seconds"`
	Database  string         `json:"database"`
	Machine   Machine        `json:"machine"`
	Options   *options       `json:"options"`
	Worker    WorkerConfig   `json:"worker"`
	Submit    *SubmitPhase   `json:"submit,omitempty"`
	E2E       *E2EPhase      `json:"e2e,omitempty"`
	Peer      *PeerPhase     `json:"peer,omitempty"`
	Idle      *IdlePhase     `json:"idle,omitempty"`
	Overload  *OverloadPhase `json:"overload,omitempty"`
	Drain     *DrainPhase    `json:"drain,omitempty"`
	Memory    *MemoryPhase   `json:"memory,omitempty"`
	Growth    *GrowthPhase   `json:"growth,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// Machine is where the figures were taken.
type Machine struct {
	CPUs              int    `json:"cpus"`
	CPUModel          string `json:"cpu_model"`
	GoVersion         string `json:"go_version"`
	Postgres          string `json:"postgres"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	SharedBuffers     string `json:"shared_buffers"`
	MaxConnections    string `json:"max_connections"`
	LoadAvgStart      string `json:"loadavg_start"`
	LoadAvgEnd        string `json:"loadavg_end"`
}

// WorkerConfig is the part of Intake's configuration the comparisons
// depend on, as the binaries see it.
type WorkerConfig struct {
	EmailConcurrency     int `json:"email_concurrency"`
	AnalyticsConcurrency int `json:"analytics_concurrency"`
	APIPoolSize          int `json:"api_pool_size"`
	RelayBatch           int `json:"relay_batch"`
}

// Latency summarises a set of durations, in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Throughput is a closed-loop run: requests completed per second.
type Throughput struct {
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	PerSecond   float64 `json:"per_second"`
	Latency     Latency `json:"latency"`
}

// SubmitPhase: the submit transaction over pgx, the same with pg_notify
// inside it, the one-statement submit over pgx, and the real API over HTTP.
type SubmitPhase struct {
	Rows []SubmitRow   `json:"rows"`
	Peak []ProcessPeak `json:"peak_rss"`
}

type SubmitRow struct {
	Concurrency    int        `json:"concurrency"`
	Baseline       Throughput `json:"baseline"`
	BaselineNotify Throughput `json:"baseline_notify_in_tx"`
	// OneStatement is the same writes as one autocommit statement
	// (SubmissionInsert): the best raw form of them.
	OneStatement Throughput `json:"baseline_one_statement"`
	System       Throughput `json:"system"`
	// Ratio is system / baseline (without notify).
	Ratio float64 `json:"ratio"`
	// NotifyRatio is baseline with notify / baseline without.
	NotifyRatio float64 `json:"notify_ratio"`
	// OneStatementRatio is system / the one-statement baseline.
	OneStatementRatio float64 `json:"one_statement_ratio"`
}

// E2EPhase: open-loop submits with a worker and the SMTP sink.
type E2EPhase struct {
	Rows []E2ERow `json:"rows"`
	// Knee is the highest rate measured that the system kept up with
	// (kneeOf); 0 when it kept up with none.
	Knee float64       `json:"knee"`
	Peak []ProcessPeak `json:"peak_rss"`
}

// kneeP99 is the submit→SMTP p99 a rate must stay within to count as kept
// up with.
const kneeP99 = 1000 // ms

// kneeOf is the highest of rows' rates at which every request was answered
// 201 (none shed), every email arrived, and submit→SMTP p99 stayed within
// kneeP99.
func kneeOf(rows []E2ERow) float64 {
	var knee float64
	for _, r := range rows {
		if r.Created == r.Sent && r.Missing == 0 && r.Delivery.P99 <= kneeP99 && r.Rate > knee {
			knee = r.Rate
		}
	}
	return knee
}

type E2ERow struct {
	Rate      float64 `json:"rate"`
	Seconds   float64 `json:"seconds"`
	Sent      int     `json:"sent"`
	Created   int     `json:"created"`
	Errors    int     `json:"errors"`
	Delivered int     `json:"delivered"`
	// Missing were created but not accepted by the SMTP sink within the
	// wait; they are not in Delivery.
	Missing int `json:"missing"`
	// Submit is intended send time to 201; Delivery is intended send time
	// to the SMTP sink's acceptance (250 after DATA).
	Submit   Latency `json:"submit_201"`
	Delivery Latency `json:"submit_to_smtp"`
	// PerApplication is the database's work (pg_stat_database) from the
	// rate's start until its emails and analytics records were all done,
	// over the applications created.
	PerApplication PerApplication `json:"per_application"`
}

// IdlePhase: one API and one worker with nothing to do.
type IdlePhase struct {
	WarmupSeconds    float64       `json:"warmup_seconds"`
	Seconds          float64       `json:"seconds"`
	Commits          int64         `json:"commits"`
	CommitsPerSecond float64       `json:"commits_per_second"`
	Peak             []ProcessPeak `json:"peak_rss"`
}

// OverloadPhase: open-loop submits above capacity, with a worker running.
type OverloadPhase struct {
	Rate float64 `json:"rate"`
	// FromKnee says Rate is twice the e2e phase's knee.
	FromKnee bool    `json:"rate_from_knee"`
	Seconds  float64 `json:"seconds"`
	Sent     int     `json:"sent"`
	// Codes counts the answers by HTTP status ("error": no answer).
	Codes      map[string]int `json:"codes"`
	FirstError string         `json:"first_error,omitempty"`
	// ShedWithoutRetryAfter are 503s and 429s without Retry-After.
	ShedWithoutRetryAfter int `json:"shed_without_retry_after"`
	// Answer is intended send time to the answer, whatever its status.
	Answer        Latency `json:"answer"`
	OverOneSecond int     `json:"over_one_second"`
	Accepted      int     `json:"accepted"`
	Stored        int     `json:"stored"`
	// AcceptedMissing were answered 201 but are not in the database.
	AcceptedMissing int `json:"accepted_missing"`
	// DrainSeconds is from the end of the load to the last accepted
	// application's email; Undelivered had none when the phase ended.
	DrainSeconds float64       `json:"drain_seconds"`
	Undelivered  int           `json:"undelivered"`
	APIPeakMiB   float64       `json:"api_peak_mib"`
	Peak         []ProcessPeak `json:"peak_rss"`
}

// DrainPhase: a backlog drained by one worker, against River working
// trivial jobs.
type DrainPhase struct {
	Applications int `json:"applications"`
	// Seconds are from the worker's launch.
	FirstEmailSeconds  float64 `json:"first_email_seconds"`
	EmailSeconds       float64 `json:"email_seconds"`
	EmailsPerSecond    float64 `json:"emails_per_second"`
	AnalyticsSeconds   float64 `json:"analytics_seconds"`
	AnalyticsPerSecond float64 `json:"analytics_per_second"`
	RawJobs            int     `json:"raw_jobs"`
	RawMaxWorkers      int     `json:"raw_max_workers"`
	RawSeconds         float64 `json:"raw_seconds"`
	RawJobsPerSecond   float64 `json:"raw_jobs_per_second"`
	// EmailRatio is emails/s over the raw no-op jobs/s.
	EmailRatio      float64       `json:"email_ratio"`
	DuplicateEmails int           `json:"duplicate_emails"`
	WorkerWarnings  int           `json:"worker_warnings"`
	Peak            []ProcessPeak `json:"peak_rss"`
}

// MemoryPhase: every phase's peaks, and the worker over a held-back
// backlog.
type MemoryPhase struct {
	Peaks          []ProcessPeak `json:"peak_rss_by_phase"`
	Backlog        int           `json:"backlog"`
	IdleMiB        float64       `json:"worker_idle_mib"`
	WaitingPeakMiB float64       `json:"worker_waiting_peak_mib"`
	DrainPeakMiB   float64       `json:"worker_draining_peak_mib"`
	DrainSeconds   float64       `json:"drain_seconds"`
	// Growth is DrainPeakMiB / WaitingPeakMiB.
	Growth  float64     `json:"growth"`
	Samples []RSSSample `json:"worker_samples"`
}

// ProcessPeak is one process's peak resident memory during one phase.
type ProcessPeak struct {
	Phase   string  `json:"phase"`
	Process string  `json:"process"`
	PeakMiB float64 `json:"peak_mib"`
}

// RSSSample is a process's resident memory at a time since it started.
type RSSSample struct {
	Seconds float64 `json:"s"`
	MiB     float64 `json:"mib"`
}

// GrowthPhase: the submit path and the relay's round, on an empty
// database and on a grown one.
type GrowthPhase struct {
	LoadSeconds float64     `json:"load_seconds"`
	Points      []GrowthRow `json:"points"`
	// After / before.
	SubmitRatio   float64 `json:"submit_ratio"`
	ClaimRatio    float64 `json:"claim_p50_ratio"`
	DispatchRatio float64 `json:"dispatch_p50_ratio"`
}

type GrowthRow struct {
	ExistingRows int        `json:"existing_rows"`
	Submit       Throughput `json:"submit"`
	Claim        Latency    `json:"claim_500"`
	Dispatch     Latency    `json:"dispatch_500"`
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeMarkdown prints the tables.
func (r *Report) writeMarkdown(w io.Writer) {
	m := r.Machine
	note := ""
	if r.Options.Short {
		note = "; --short: smoke-test sizes, not figures to quote"
	}
	fmt.Fprintf(w, "\n## Intake benchmark (%s, %.0f s%s)\n\n", r.StartedAt.Format(time.RFC3339), r.Seconds, note)
	table(w, []string{"machine", ""}, [][]string{
		{"CPUs", fmt.Sprintf("%d × %s", m.CPUs, m.CPUModel)},
		{"Go", m.GoVersion},
		{"Postgres", m.Postgres},
		{"fsync / synchronous_commit", m.Fsync + " / " + m.SynchronousCommit},
		{"shared_buffers / max_connections", m.SharedBuffers + " / " + m.MaxConnections},
		{"load average (start → end)", m.LoadAvgStart + " → " + m.LoadAvgEnd},
		{"worker", fmt.Sprintf("email %d, analytics %d workers; relay batch %d; API pool %d", r.Worker.EmailConcurrency, r.Worker.AnalyticsConcurrency, r.Worker.RelayBatch, r.Worker.APIPoolSize)},
	})

	if s := r.Submit; s != nil {
		fmt.Fprintf(w, "\n### 1. Submit throughput (closed loop; p50/p99 ms)\n\n")
		var rows [][]string
		for _, x := range s.Rows {
			rows = append(rows, []string{
				itoa(x.Concurrency),
				tput(x.Baseline), tput(x.BaselineNotify), tput(x.OneStatement), tput(x.System),
				ratio(x.NotifyRatio), ratio(x.Ratio), ratio(x.OneStatementRatio),
			})
		}
		table(w, []string{"C", "baseline pgx req/s (p50/p99)", "+ pg_notify in tx", "one statement pgx", "system HTTP",
			"notify/baseline", "**system/baseline**", "**system/one statement**"}, rows)
		errorsNote(w, s.Rows)
	}

	if e := r.E2E; e != nil {
		fmt.Fprintf(w, "\n### 2. End-to-end latency (open loop, from intended send time; ms)\n\n")
		var rows [][]string
		for _, x := range e.Rows {
			rows = append(rows, []string{
				f0(x.Rate), fmt.Sprintf("%d / %d", x.Created, x.Sent), lat4(x.Submit),
				fmt.Sprintf("%d (%d missing)", x.Delivered, x.Missing), lat4(x.Delivery),
				fmt.Sprintf("%.2f / %.2f / %.2f", x.PerApplication.Commits, x.PerApplication.Inserts, x.PerApplication.Updates),
			})
		}
		table(w, []string{"rate/s", "201 / sent", "submit→201 p50/p95/p99/max", "delivered", "submit→SMTP p50/p95/p99/max", "per application: commits / inserts / updates"}, rows)
		if e.Knee > 0 {
			fmt.Fprintf(w, "\nKnee: %s/s, the highest rate measured with every request answered 201, no email missing and submit→SMTP p99 ≤ %d ms.\n", f0(e.Knee), kneeP99)
		} else {
			fmt.Fprintf(w, "\nKnee: none of the rates measured had every request answered 201, no email missing and submit→SMTP p99 ≤ %d ms.\n", kneeP99)
		}
	}

	if r.Peer != nil {
		r.Peer.writeMarkdown(w)
	}

	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "\n### Idle cost (one API and one worker, nothing to do)\n\n")
		table(w, []string{"warm-up s", "counted s", "commits", "**commits/s**"}, [][]string{{
			f0(i.WarmupSeconds), f1(i.Seconds), fmt.Sprintf("%d", i.Commits), f2(i.CommitsPerSecond),
		}})
	}

	if o := r.Overload; o != nil {
		fmt.Fprintf(w, "\n### Overload (open loop above capacity, worker running)\n\n")
		codes := make([]string, 0, len(o.Codes))
		known := []string{"201", "503", "429", "error"}
		for _, c := range known {
			if n, ok := o.Codes[c]; ok {
				codes = append(codes, fmt.Sprintf("%s: %d", c, n))
			}
		}
		for c, n := range o.Codes {
			if !slices.Contains(known, c) {
				codes = append(codes, fmt.Sprintf("%s: %d", c, n))
			}
		}
		table(w, []string{"rate/s × s", "sent", "answers", "answer p50/p95/p99/max ms", "over 1 s", "API peak RSS MiB", "accepted / stored / lost", "drain after s"}, [][]string{{
			fmt.Sprintf("%.0f × %.0f", o.Rate, o.Seconds), itoa(o.Sent), strings.Join(codes, ", "), lat4(o.Answer),
			itoa(o.OverOneSecond), f1(o.APIPeakMiB), fmt.Sprintf("%d / %d / %d", o.Accepted, o.Stored, o.AcceptedMissing),
			fmt.Sprintf("%.1f (%d undelivered)", o.DrainSeconds, o.Undelivered),
		}})
		if o.FromKnee {
			fmt.Fprintf(w, "\nThe rate is twice the e2e phase's knee.\n")
		}
		if o.ShedWithoutRetryAfter > 0 || o.FirstError != "" {
			fmt.Fprintf(w, "\nshed without Retry-After: %d; first transport error: %s\n", o.ShedWithoutRetryAfter, o.FirstError)
		}
	}

	if d := r.Drain; d != nil {
		fmt.Fprintf(w, "\n### 3. Backlog drain (one worker, from its start)\n\n")
		table(w, []string{"applications", "first email s", "emails/s (= applications/s)", "analytics records/s", "raw River no-op jobs/s", "**emails/s / raw**"}, [][]string{{
			itoa(d.Applications), f2(d.FirstEmailSeconds),
			fmt.Sprintf("%.0f (%.1f s)", d.EmailsPerSecond, d.EmailSeconds),
			fmt.Sprintf("%.0f (%.1f s)", d.AnalyticsPerSecond, d.AnalyticsSeconds),
			fmt.Sprintf("%.0f (%d jobs, MaxWorkers %d, %.1f s)", d.RawJobsPerSecond, d.RawJobs, d.RawMaxWorkers, d.RawSeconds),
			ratio(d.EmailRatio),
		}})
		if d.DuplicateEmails > 0 || d.WorkerWarnings > 0 {
			fmt.Fprintf(w, "\nduplicate emails: %d, worker warnings logged: %d\n", d.DuplicateEmails, d.WorkerWarnings)
		}
	}

	peaks := r.peaks()
	if len(peaks) > 0 || r.Memory != nil {
		fmt.Fprintf(w, "\n### 4. Memory (peak RSS, MiB)\n\n")
		var rows [][]string
		for _, p := range peaks {
			rows = append(rows, []string{p.Phase, p.Process, f1(p.PeakMiB)})
		}
		if mp := r.Memory; mp != nil {
			rows = append(rows,
				[]string{fmt.Sprintf("memory: %d events held back", mp.Backlog), "intake-worker", fmt.Sprintf("%.1f (idle %.1f)", mp.WaitingPeakMiB, mp.IdleMiB)},
				[]string{fmt.Sprintf("memory: %d events draining (%.1f s)", mp.Backlog, mp.DrainSeconds), "intake-worker", fmt.Sprintf("%.1f (×%.2f)", mp.DrainPeakMiB, mp.Growth)},
			)
		}
		table(w, []string{"phase", "process", "peak RSS"}, rows)
	}

	if g := r.Growth; g != nil {
		fmt.Fprintf(w, "\n### 5. Growth (baseline submit at C=8; relay round of 500 events; ms)\n\n")
		var rows [][]string
		for _, x := range g.Points {
			rows = append(rows, []string{
				itoa(x.ExistingRows), tput(x.Submit),
				fmt.Sprintf("%.2f / %.2f", x.Claim.P50, x.Claim.Max),
				fmt.Sprintf("%.2f / %.2f", x.Dispatch.P50, x.Dispatch.Max),
			})
		}
		rows = append(rows, []string{"after/before", ratio(g.SubmitRatio), ratio(g.ClaimRatio), ratio(g.DispatchRatio)})
		table(w, []string{"existing applications", "submit req/s (p50/p99)", "OutboxClaim p50/max", "DispatchEvents p50/max"}, rows)
		fmt.Fprintf(w, "\nbulk load: %.1f s\n", g.LoadSeconds)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\n**The run stopped early:** %s\n", r.Error)
	}
}

// peaks lists the peak RSS of every process of every phase that ran.
func (r *Report) peaks() []ProcessPeak {
	var peaks []ProcessPeak
	if r.Submit != nil {
		peaks = append(peaks, r.Submit.Peak...)
	}
	if r.E2E != nil {
		peaks = append(peaks, r.E2E.Peak...)
	}
	if r.Peer != nil {
		peaks = append(peaks, r.Peer.Peak...)
	}
	if r.Drain != nil {
		peaks = append(peaks, r.Drain.Peak...)
	}
	return peaks
}

func errorsNote(w io.Writer, rows []SubmitRow) {
	for _, x := range rows {
		for name, t := range map[string]Throughput{"baseline": x.Baseline, "baseline+notify": x.BaselineNotify, "one statement": x.OneStatement, "system": x.System} {
			if t.Errors > 0 {
				fmt.Fprintf(w, "\nC=%d %s: %d errors (first: %s)\n", x.Concurrency, name, t.Errors, t.FirstError)
			}
		}
	}
}

func table(w io.Writer, head []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(head)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

func tput(t Throughput) string {
	return fmt.Sprintf("%.0f (%.1f / %.1f)", t.PerSecond, t.Latency.P50, t.Latency.P99)
}

func lat4(l Latency) string {
	return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", l.P50, l.P95, l.P99, l.Max)
}

func ratio(f float64) string { return fmt.Sprintf("%.2f", f) }
func itoa(n int) string      { return fmt.Sprintf("%d", n) }
func f0(f float64) string    { return fmt.Sprintf("%.0f", f) }
func f1(f float64) string    { return fmt.Sprintf("%.1f", f) }
func f2(f float64) string    { return fmt.Sprintf("%.2f", f) }

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The harness runs every phase in --short mode against the local server,
// and the JSON has non-zero figures for each, so it cannot rot unnoticed.
func TestRunShort(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "bench.json")
	args := []string{"--short", "--out", out}
	serverURL := os.Getenv("INTAKE_TEST_DATABASE_URL")
	if serverURL != "" {
		args = append(args, "--database-url", serverURL)
	} else {
		serverURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	var stdout bytes.Buffer
	start := time.Now()
	err := run(ctx, args, func(string) string { return "" }, &stdout)
	t.Logf("intake-bench --short took %s:\n%s", time.Since(start).Round(time.Second), stdout.String())
	require.NoError(t, err)

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var r Report
	require.NoError(t, json.Unmarshal(raw, &r))
	require.Empty(t, r.Error)
	require.Positive(t, r.Machine.CPUs)
	require.NotEmpty(t, r.Machine.Postgres)
	require.NotEmpty(t, r.Machine.Fsync)
	require.NotEmpty(t, r.Machine.SynchronousCommit)

	positiveThroughput := func(name string, x Throughput) {
		t.Helper()
		require.Positive(t, x.Requests, name)
		require.Positive(t, x.PerSecond, name)
		require.Positive(t, x.Latency.P50, name)
		require.Positive(t, x.Latency.P99, name)
		// Errors are not fatal: the server may be short of connections
		// while other tests run. They are in the report.
		if x.Errors > 0 {
			t.Logf("%s: %d errors (first: %s)", name, x.Errors, x.FirstError)
		}
	}
	positivePeaks := func(name string, peaks []ProcessPeak, processes int) {
		t.Helper()
		require.Len(t, peaks, processes, name)
		for _, p := range peaks {
			require.Positive(t, p.PeakMiB, "%s: %s", name, p.Process)
		}
	}

	require.NotNil(t, r.Submit, "submit phase")
	require.Len(t, r.Submit.Rows, 3, "C = 1, 8, 32")
	for _, row := range r.Submit.Rows {
		positiveThroughput("submit baseline", row.Baseline)
		positiveThroughput("submit baseline with notify", row.BaselineNotify)
		positiveThroughput("submit one-statement baseline", row.OneStatement)
		positiveThroughput("submit system", row.System)
		require.Positive(t, row.Ratio)
		require.Positive(t, row.NotifyRatio)
		require.Positive(t, row.OneStatementRatio)
	}
	positivePeaks("submit", r.Submit.Peak, 1)

	require.NotNil(t, r.E2E, "e2e phase")
	require.Len(t, r.E2E.Rows, 1)
	e := r.E2E.Rows[0]
	require.Positive(t, e.Created)
	require.Positive(t, e.Sent)
	require.Equal(t, e.Created, e.Delivered, "every confirmation arrives")
	require.Positive(t, e.Submit.P50)
	require.Positive(t, e.Submit.Max)
	require.Positive(t, e.Delivery.P50)
	positivePeaks("e2e", r.E2E.Peak, 2)
	// Every application inserts at least its row, event, key, email job,
	// ledger row and analytics record, and commits at least its submit.
	require.GreaterOrEqual(t, e.PerApplication.Inserts, 6.0)
	require.GreaterOrEqual(t, e.PerApplication.Commits, 1.0)
	require.Positive(t, e.PerApplication.Updates)

	require.NotNil(t, r.Peer, "peer phase")
	require.Len(t, r.Peer.Submit, 3, "C = 1, 8, 32")
	for _, row := range r.Peer.Submit {
		positiveThroughput("peer phase: Intake", row.Intake)
		positiveThroughput("peer phase: peer", row.Peer)
		require.Positive(t, row.Ratio)
	}
	require.Len(t, r.Peer.E2E, 1)
	for name, x := range map[string]E2ERow{"Intake": r.Peer.E2E[0].Intake, "peer": r.Peer.E2E[0].Peer} {
		require.Positive(t, x.Created, name)
		require.Equal(t, x.Created, x.Delivered, "%s: every confirmation arrives", name)
		require.Positive(t, x.Submit.P50, name)
		require.Positive(t, x.Delivery.P50, name)
		require.GreaterOrEqual(t, x.PerApplication.Commits, 1.0, name)
	}
	// The peer inserts no outbox event and leaves no ledger row to the
	// relay: the application, its key, the email job, the ledger row (the
	// email job's) and the analytics record.
	require.GreaterOrEqual(t, r.Peer.E2E[0].Peer.PerApplication.Inserts, 5.0)
	require.GreaterOrEqual(t, r.Peer.E2E[0].Intake.PerApplication.Inserts, 6.0)
	positivePeaks("peer", r.Peer.Peak, 3)

	require.NotNil(t, r.Idle, "idle phase")
	require.Positive(t, r.Idle.Seconds)
	require.Positive(t, r.Idle.CommitsPerSecond, "River's leader and the polls commit even when idle")
	positivePeaks("idle", r.Idle.Peak, 2)

	require.NotNil(t, r.Overload, "overload phase")
	o := r.Overload
	require.Positive(t, o.Sent)
	require.Positive(t, o.Accepted)
	require.Equal(t, o.Accepted, o.Codes["201"])
	require.Zero(t, o.AcceptedMissing, "every 201 is stored")
	require.Zero(t, o.Undelivered, "every accepted application's email goes out")
	require.Zero(t, o.ShedWithoutRetryAfter)
	require.Positive(t, o.Answer.Max)
	positivePeaks("overload", o.Peak, 2)

	require.NotNil(t, r.Drain, "drain phase")
	d := r.Drain
	require.Equal(t, 500, d.Applications)
	require.Positive(t, d.EmailsPerSecond)
	require.Positive(t, d.AnalyticsPerSecond)
	require.Equal(t, 500, d.RawJobs)
	require.Positive(t, d.RawJobsPerSecond)
	require.Positive(t, d.EmailRatio)
	require.Zero(t, d.DuplicateEmails)
	positivePeaks("drain", d.Peak, 1)

	require.NotNil(t, r.Memory, "memory phase")
	m := r.Memory
	require.Equal(t, 2000, m.Backlog)
	require.Positive(t, m.IdleMiB)
	require.Positive(t, m.WaitingPeakMiB)
	require.Positive(t, m.DrainPeakMiB)
	require.Positive(t, m.DrainSeconds)
	require.Positive(t, m.Growth)
	require.NotEmpty(t, m.Samples)
	positivePeaks("memory", m.Peaks, 8) // submit api, e2e api and worker, peer api, peer and worker, drain worker, memory worker

	require.NotNil(t, r.Growth, "growth phase")
	g := r.Growth
	require.Len(t, g.Points, 2)
	require.Equal(t, 0, g.Points[0].ExistingRows)
	require.Equal(t, 10_000, g.Points[1].ExistingRows)
	for _, p := range g.Points {
		positiveThroughput("growth submit", p.Submit)
		require.Positive(t, p.Claim.P50)
		require.Positive(t, p.Dispatch.P50)
	}
	require.Positive(t, g.LoadSeconds)
	require.Positive(t, g.SubmitRatio)
	require.Positive(t, g.ClaimRatio)
	require.Positive(t, g.DispatchRatio)

	for _, heading := range []string{"### 1. Submit", "### 2. End-to-end", "### Peer", "### 3. Backlog drain", "### 4. Memory", "### 5. Growth"} {
		require.Contains(t, stdout.String(), heading)
	}

	// The bench database is gone.
	conn, err := pgx.Connect(ctx, serverURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var left bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", r.Database).Scan(&left))
	require.False(t, left, "database %s was not dropped", r.Database)
}

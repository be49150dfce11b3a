package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// PeerPhase: Intake beside the design without an outbox (intake-peer,
// whose submit transaction inserts the River jobs itself), back to back on
// fresh tables, with the same client code and the same worker.
type PeerPhase struct {
	Submit []PeerSubmitRow `json:"submit"`
	E2E    []PeerE2ERow    `json:"e2e"`
	Peak   []ProcessPeak   `json:"peak_rss"`
}

// PeerSubmitRow is closed-loop submit throughput, without a worker, as in
// the submit phase.
type PeerSubmitRow struct {
	Concurrency int        `json:"concurrency"`
	Intake      Throughput `json:"intake"`
	Peer        Throughput `json:"peer"`
	// Ratio is peer / Intake.
	Ratio float64 `json:"ratio"`
}

// PeerE2ERow is one open-loop rate run against each design, as in the
// e2e phase, each with its own database work per application.
type PeerE2ERow struct {
	Rate   float64 `json:"rate"`
	Intake E2ERow  `json:"intake"`
	Peer   E2ERow  `json:"peer"`
}

// peerPhase measures Intake and the peer: for each concurrency closed-loop
// submits to the API, then to the peer; then, with a worker running, for
// each rate open-loop submits to the API, then to the peer, each until its
// emails and analytics records are all in.
func (b *bench) peerPhase(ctx context.Context) error {
	phase := &PeerPhase{}
	b.report.Peer = phase
	dir, err := os.MkdirTemp("", "intake-bench-peer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.logf("building intake-peer")
	peerBin, err := buildPeer(ctx, dir)
	if err != nil {
		return err
	}
	b.sink.reset()

	api, apiURL, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	var peer, worker *process // stopAll skips those that did not start
	defer func() { phase.Peak = stopAll(phasePeer, api, peer, worker) }()
	peer, peerURL, err := b.startServer(ctx, peerBin)
	if err != nil {
		return err
	}
	client := newHTTPClient(max(slices.Max(b.opts.Concurrency), 256))
	defer client.CloseIdleConnections()
	running := func() error { return errors.Join(api.exited(), peer.exited()) }

	for _, c := range b.opts.Concurrency {
		row := PeerSubmitRow{Concurrency: c}
		if err := resetTables(ctx, b.pool); err != nil {
			return err
		}
		row.Intake = b.systemSubmit(ctx, client, apiURL, c)
		if err := resetTables(ctx, b.pool); err != nil {
			return err
		}
		err := b.withoutEventCheck(ctx, func() error {
			row.Peer = b.systemSubmit(ctx, client, peerURL, c)
			return nil
		})
		if err != nil {
			return err
		}
		for name, t := range map[string]Throughput{"Intake": row.Intake, "peer": row.Peer} {
			if t.Requests == 0 {
				return fmt.Errorf("C=%d %s: no request succeeded (%d errors, first: %s)", c, name, t.Errors, t.FirstError)
			}
		}
		row.Ratio = round(div(row.Peer.PerSecond, row.Intake.PerSecond), 3)
		phase.Submit = append(phase.Submit, row)
		b.logf("peer C=%-3d Intake %6.0f req/s (p50 %.1f p99 %.1f ms), peer %6.0f req/s (p50 %.1f p99 %.1f ms): peer/Intake %.2f",
			c, row.Intake.PerSecond, row.Intake.Latency.P50, row.Intake.Latency.P99,
			row.Peer.PerSecond, row.Peer.Latency.P50, row.Peer.Latency.P99, row.Ratio)
		if err := running(); err != nil {
			return err
		}
	}

	if err := resetTables(ctx, b.pool); err != nil {
		return err
	}
	if worker, err = b.startWorker(ctx); err != nil {
		return err
	}
	// The counters start once the processes' start-up work is counted.
	if err := sleep(ctx, statsSettle); err != nil {
		return err
	}
	for _, rate := range b.opts.PeerRates {
		row := PeerE2ERow{Rate: rate}
		if row.Intake, err = b.peerE2E(ctx, client, apiURL, worker, rate); err != nil {
			return fmt.Errorf("Intake at %.0f/s: %w", rate, err)
		}
		if err := b.checkPeerAnalytics(ctx); err != nil {
			return err
		}
		if err := resetTables(ctx, b.pool); err != nil {
			return err
		}
		err := b.withoutEventCheck(ctx, func() error {
			peerRow, err := b.peerE2E(ctx, client, peerURL, worker, rate)
			row.Peer = peerRow
			return err
		})
		if err != nil {
			return fmt.Errorf("peer at %.0f/s: %w", rate, err)
		}
		if err := resetTables(ctx, b.pool); err != nil {
			return err
		}
		phase.E2E = append(phase.E2E, row)
		for _, s := range []struct {
			name string
			row  E2ERow
		}{{"Intake", row.Intake}, {"peer", row.Peer}} {
			b.logf("peer %4.0f/s %-6s: %d/%d created, submit→201 p50 %.1f p99 %.1f ms, submit→SMTP p50 %.1f p99 %.1f ms, %d missing; per application %.2f commits",
				rate, s.name, s.row.Created, s.row.Sent, s.row.Submit.P50, s.row.Submit.P99,
				s.row.Delivery.P50, s.row.Delivery.P99, s.row.Missing, s.row.PerApplication.Commits)
		}
		if err := errors.Join(running(), worker.exited()); err != nil {
			return err
		}
	}
	return nil
}

// buildPeer builds intake-peer into dir from the harness's own tree
// (--bin-dir holds the system under test; the peer is part of the
// harness) and returns its path.
func buildPeer(ctx context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "intake-peer")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/intake/intake/cmd/intake-bench/intake-peer")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build intake-peer: %w\n%s", err, out)
	}
	return path, nil
}

// withoutEventCheck runs fn with the database's check of invariant 1 (the
// applications_have_event trigger: an application commits only with its
// application.submitted event) turned off: the peer writes no event, and
// in the design it stands for the check would not exist. Its cost, a
// lookup per application at commit, stays on Intake's side.
func (b *bench) withoutEventCheck(ctx context.Context, fn func() error) (err error) {
	if _, err := b.pool.Exec(ctx, "ALTER TABLE applications DISABLE TRIGGER applications_have_event"); err != nil {
		return err
	}
	defer func() {
		_, enableErr := b.pool.Exec(context.WithoutCancel(ctx), "ALTER TABLE applications ENABLE TRIGGER applications_have_event")
		err = errors.Join(err, enableErr)
	}()
	return fn()
}

// peerE2E is one open-loop run on tables reset before it: e2eRate, then
// the wait for every analytics record, then the database's work per
// application.
func (b *bench) peerE2E(ctx context.Context, client *http.Client, baseURL string, worker *process, rate float64) (E2ERow, error) {
	before, err := readCounters(ctx, b.pool)
	if err != nil {
		return E2ERow{}, err
	}
	row, err := b.e2eRate(ctx, client, baseURL, worker, rate)
	if err != nil {
		return row, err
	}
	if err := b.waitAnalytics(ctx, row.Created, max(30*time.Second, b.opts.RateDuration)); err != nil {
		return row, err
	}
	// The tables were reset before the run: every record is this run's. A
	// design whose analytics jobs no worker runs shows here.
	var records int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM analytics_events").Scan(&records); err != nil {
		return row, err
	}
	if records < row.Created {
		return row, fmt.Errorf("%d analytics records for %d applications", records, row.Created)
	}
	if err := sleep(ctx, statsSettle); err != nil {
		return row, err
	}
	after, err := readCounters(ctx, b.pool)
	if err != nil {
		return row, err
	}
	row.PerApplication = perApplication(after.sub(before), row.Created)
	return row, nil
}

// checkPeerAnalytics checks that Intake's relay just wrote the analytics
// records of its run itself, in its rounds (the Postgres sink), as the
// peer writes them in its submit transaction: had it inserted
// analytics_event jobs, the two designs would not be doing the same work.
func (b *bench) checkPeerAnalytics(ctx context.Context) error {
	var jobs int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'analytics_event'").Scan(&jobs); err != nil {
		return err
	}
	if jobs > 0 {
		return fmt.Errorf("Intake's relay inserted %d analytics_event jobs, where the peer writes the record in its transaction: the comparison would be unfair", jobs)
	}
	return nil
}

// writeMarkdown prints the phase's two tables.
func (p *PeerPhase) writeMarkdown(w io.Writer) {
	fmt.Fprint(w, "\n### Peer: without an outbox (jobs inserted in the submit transaction)\n\n")
	var rows [][]string
	for _, x := range p.Submit {
		rows = append(rows, []string{itoa(x.Concurrency), tput(x.Intake), tput(x.Peer), ratio(x.Ratio)})
	}
	table(w, []string{"C", "Intake API req/s (p50/p99 ms)", "peer req/s (p50/p99 ms)", "**peer/Intake**"}, rows)
	for _, x := range p.Submit {
		for name, t := range map[string]Throughput{"Intake": x.Intake, "peer": x.Peer} {
			if t.Errors > 0 {
				fmt.Fprintf(w, "\nC=%d %s: %d errors (first: %s)\n", x.Concurrency, name, t.Errors, t.FirstError)
			}
		}
	}
	fmt.Fprintln(w)
	rows = nil
	for _, x := range p.E2E {
		for _, s := range []struct {
			name string
			row  E2ERow
		}{{"Intake", x.Intake}, {"peer", x.Peer}} {
			rows = append(rows, []string{
				f0(x.Rate), s.name, fmt.Sprintf("%d / %d", s.row.Created, s.row.Sent), lat4(s.row.Submit),
				fmt.Sprintf("%d (%d missing)", s.row.Delivered, s.row.Missing), lat4(s.row.Delivery),
				fmt.Sprintf("%.2f / %.2f / %.2f", s.row.PerApplication.Commits, s.row.PerApplication.Inserts, s.row.PerApplication.Updates),
			})
		}
	}
	table(w, []string{"rate/s", "system", "201 / sent", "submit→201 p50/p95/p99/max ms", "delivered", "submit→SMTP p50/p95/p99/max ms", "per application: commits / inserts / updates"}, rows)
}

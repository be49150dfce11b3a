package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/postgres"
)

// bench is one run: its options, its database, and what it measured.
type bench struct {
	opts   *options
	cfg    config.Config // Intake's configuration as the binaries will see it
	getenv func(string) string
	out    io.Writer // progress lines
	runID  string

	dbURL  string
	pool   *pgxpool.Pool // the harness's own connections
	store  *postgres.Store
	binDir string
	sink   *smtpSink
	seq    atomic.Int64 // makes every key and email of the run unique

	report *Report
}

// run is the whole harness: options, a fresh database, the selected phases,
// the report; the processes it started and the database are gone when it
// returns (unless --keep).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	opts, err := parseOptions(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	// The binaries read the same variables (passed through below), so the
	// harness knows their settings, and a bad value fails here first. They
	// need a status secret; without one set, one made for this run does.
	getenv = config.WithGeneratedStatusSecret(getenv)
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	b := &bench{opts: opts, cfg: cfg, getenv: getenv, out: stdout}
	if opts.Quiet {
		b.out = io.Discard
	}
	b.report = &Report{
		StartedAt: time.Now().UTC().Truncate(time.Second),
		Options:   opts,
		Worker: WorkerConfig{
			EmailConcurrency:     cfg.EmailConcurrency,
			AnalyticsConcurrency: cfg.AnalyticsConcurrency,
			APIPoolSize:          int(cfg.DBMaxConns),
			RelayBatch:           cfg.RelayBatch,
		},
	}

	name, dbURL, err := createDatabase(ctx, opts.ServerURL)
	if err != nil {
		return err
	}
	b.runID = strings.TrimPrefix(name, "intake_bench_")
	b.dbURL = dbURL
	b.report.Database = name
	b.logf("database %s", name)
	defer func() {
		if opts.Keep {
			b.logf("kept database %s", name)
			return
		}
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if dropErr := dropDatabase(dropCtx, opts.ServerURL, name); dropErr != nil {
			err = errors.Join(err, fmt.Errorf("drop database %s: %w", name, dropErr))
		}
	}()

	b.pool, err = postgres.NewPool(ctx, dbURL, &postgres.PoolOpts{MaxConns: 8, ApplicationName: "intake-bench"})
	if err != nil {
		return err
	}
	defer b.pool.Close()
	b.store = postgres.NewStore(b.pool)
	if err := prepareDatabase(ctx, b.pool); err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	if b.report.Machine, err = machine(ctx, b.pool); err != nil {
		return err
	}

	if opts.needsBinaries() {
		b.binDir = opts.BinDir
		if b.binDir == "" {
			dir, err := os.MkdirTemp("", "intake-bench-bin-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			b.logf("building intake-api and intake-worker")
			if err := buildBinaries(ctx, dir); err != nil {
				return err
			}
			b.binDir = dir
		}
	}
	if opts.needsWorker() {
		if b.sink, err = startSMTPSink(opts.SMTPTLS == "starttls"); err != nil {
			return fmt.Errorf("SMTP sink: %w", err)
		}
		defer b.sink.close()
	}

	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{phaseSubmit, b.submitPhase},
		{phaseE2E, b.e2ePhase},
		{phasePeer, b.peerPhase},
		{phaseIdle, b.idlePhase},
		{phaseOverload, b.overloadPhase},
		{phaseDrain, b.drainPhase},
		{phaseMemory, b.memoryPhase},
		{phaseGrowth, b.growthPhase},
	}
	var phaseErr error
	for _, p := range phases {
		if !opts.want(p.name) {
			continue
		}
		b.logf("phase %s", p.name)
		if err := resetTables(ctx, b.pool); err != nil {
			phaseErr = fmt.Errorf("%s: reset: %w", p.name, err)
			break
		}
		if err := p.run(ctx); err != nil {
			phaseErr = fmt.Errorf("%s: %w", p.name, err)
			break
		}
	}

	r := b.report
	r.Seconds = time.Since(r.StartedAt).Round(time.Second).Seconds()
	r.Machine.LoadAvgEnd = loadAvg()
	if phaseErr != nil {
		r.Error = phaseErr.Error()
	}
	r.writeMarkdown(stdout)
	if opts.Out != "" {
		if err := r.writeJSON(opts.Out); err != nil {
			return errors.Join(phaseErr, err)
		}
		b.logf("wrote %s", opts.Out)
	}
	return phaseErr
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// next returns a number no other key or email of this run has.
func (b *bench) next() int64 { return b.seq.Add(1) }

// controlled are the variables the harness sets for the binaries; every
// other variable Intake reads is passed through when set here. The log
// level stays info (the default): the harness waits for the binaries'
// "listening" and "working" lines.
var controlled = []string{
	"DATABASE_URL", "INTAKE_HTTP_ADDR", "INTAKE_OPS_ADDR", "INTAKE_API_OPS_ADDR", "INTAKE_RATE_LIMIT", "INTAKE_LOG_LEVEL",
	"INTAKE_SMTP_HOST", "INTAKE_SMTP_PORT", "INTAKE_SMTP_TLS", "INTAKE_SMTP_USERNAME", "INTAKE_SMTP_PASSWORD",
	"INTAKE_ANALYTICS_SINK", "INTAKE_ANALYTICS_URL",
}

func (b *bench) childEnv() []string {
	env := []string{
		"DATABASE_URL=" + b.dbURL,
		"INTAKE_HTTP_ADDR=127.0.0.1:0",
		"INTAKE_OPS_ADDR=127.0.0.1:0",
		"INTAKE_API_OPS_ADDR=127.0.0.1:0",
		"INTAKE_RATE_LIMIT=0",
		"INTAKE_LOG_LEVEL=info",
	}
	if b.sink != nil {
		env = append(env, b.sink.env()...)
	}
	for _, v := range config.Vars {
		if slices.Contains(controlled, v.Name) {
			continue
		}
		if val := b.getenv(v.Name); val != "" {
			env = append(env, v.Name+"="+val)
		}
	}
	// The Go runtime's own knobs change the figures too.
	for _, name := range []string{"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if val := b.getenv(name); val != "" {
			env = append(env, name+"="+val)
		}
	}
	return env
}

// startAPI runs intake-api and returns its base URL.
func (b *bench) startAPI(ctx context.Context) (*process, string, error) {
	return b.startServer(ctx, filepath.Join(b.binDir, "intake-api"))
}

// startServer runs the HTTP server at bin (intake-api, intake-peer) with
// the API's environment and returns its base URL, read from its
// "listening" log line.
func (b *bench) startServer(ctx context.Context, bin string) (*process, string, error) {
	p, err := startProcess(bin, b.childEnv(), "listening")
	if err != nil {
		return nil, "", err
	}
	line, err := p.waitLog(ctx, "listening", 30*time.Second)
	if err != nil {
		p.stop(5 * time.Second)
		return nil, "", err
	}
	addr, _ := line["addr"].(string)
	if addr == "" {
		p.stop(5 * time.Second)
		return nil, "", fmt.Errorf("%s: listening line without addr", filepath.Base(bin))
	}
	return p, "http://" + addr, nil
}

// startWorker runs intake-worker and returns once it is working (River
// started, relay running).
func (b *bench) startWorker(ctx context.Context) (*process, error) {
	p, err := startProcess(filepath.Join(b.binDir, "intake-worker"), b.childEnv(), "working")
	if err != nil {
		return nil, err
	}
	if _, err := p.waitLog(ctx, "working", 60*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// stopAll stops processes, recording each one's peak RSS for phase.
func stopAll(phase string, procs ...*process) []ProcessPeak {
	var peaks []ProcessPeak
	for _, p := range procs {
		if p == nil {
			continue
		}
		peaks = append(peaks, ProcessPeak{Phase: phase, Process: p.name, PeakMiB: round(p.rss.peak(), 1)})
		p.stop(20 * time.Second)
	}
	return peaks
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        2 * conns,
			MaxIdleConnsPerHost: 2 * conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

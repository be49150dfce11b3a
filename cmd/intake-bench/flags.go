package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The phases, in the order they run.
const (
	phaseSubmit   = "submit"
	phaseE2E      = "e2e"
	phasePeer     = "peer"
	phaseIdle     = "idle"
	phaseOverload = "overload"
	phaseDrain    = "drain"
	phaseMemory   = "memory"
	phaseGrowth   = "growth"
)

var allPhases = []string{phaseSubmit, phaseE2E, phasePeer, phaseIdle, phaseOverload, phaseDrain, phaseMemory, phaseGrowth}

// options are the command line, after --short has filled in what was not
// given explicitly.
type options struct {
	Phases           []string      `json:"phases"`
	Short            bool          `json:"short"`
	ServerURL        string        `json:"-"`
	Out              string        `json:"-"`
	Keep             bool          `json:"-"`
	BinDir           string        `json:"-"`
	Quiet            bool          `json:"-"`
	Concurrency      []int         `json:"concurrency"`
	Duration         time.Duration `json:"-"`
	Rates            []float64     `json:"rates"`
	RateDuration     time.Duration `json:"-"`
	Backlog          int           `json:"backlog"`
	MemoryBacklog    int           `json:"memory_backlog"`
	MemoryHold       time.Duration `json:"-"`
	GrowthRows       int           `json:"growth_rows"`
	GrowthRounds     int           `json:"growth_rounds"`
	DrainTimeout     time.Duration `json:"-"`
	IdleWarmup       time.Duration `json:"-"`
	IdleDuration     time.Duration `json:"-"`
	OverloadRate     float64       `json:"overload_rate"`
	PeerRates        []float64     `json:"peer_rates"`
	OverloadDuration time.Duration `json:"-"`
	SMTPTLS          string        `json:"smtp_tls"`
}

// MarshalJSON records the options in the report, durations as text.
func (o *options) MarshalJSON() ([]byte, error) {
	type plain options
	return json.Marshal(struct {
		*plain
		Duration         string `json:"duration"`
		RateDuration     string `json:"rate_duration"`
		MemoryHold       string `json:"memory_hold"`
		IdleWarmup       string `json:"idle_warmup"`
		IdleDuration     string `json:"idle_duration"`
		OverloadDuration string `json:"overload_duration"`
	}{(*plain)(o), o.Duration.String(), o.RateDuration.String(), o.MemoryHold.String(),
		o.IdleWarmup.String(), o.IdleDuration.String(), o.OverloadDuration.String()})
}

func (o *options) want(phase string) bool { return slices.Contains(o.Phases, phase) }

// needsBinaries reports whether a selected phase runs intake-api or
// intake-worker.
func (o *options) needsBinaries() bool { return o.want(phaseSubmit) || o.needsWorker() }

// needsWorker reports whether a selected phase runs intake-worker, which
// sends to the SMTP sink.
func (o *options) needsWorker() bool {
	return o.want(phaseE2E) || o.want(phasePeer) || o.want(phaseIdle) || o.want(phaseOverload) || o.want(phaseDrain) || o.want(phaseMemory)
}

// parseOptions reads args. Sizes not given explicitly take their --short
// value when --short is set.
func parseOptions(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("intake-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: intake-bench [flags]\n\n"+
			"Creates a fresh database intake_bench_<random> on the server, measures the\n"+
			"phases (submit, e2e, peer, idle, overload, drain, memory, growth) against raw baselines, prints\n"+
			"markdown tables and writes JSON. The database is dropped at the end unless\n"+
			"--keep. The API and the worker get every INTAKE_* variable set in this\n"+
			"environment (and GOMAXPROCS, GOGC, GOMEMLIMIT, GODEBUG), except the ones\n"+
			"it sets: database, addresses, SMTP, analytics sink, rate limit (0) and\n"+
			"log level (info).\n\nFlags:")
		fs.PrintDefaults()
	}
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma-separated phases to run: "+strings.Join(allPhases, ", "))
	fs.BoolVar(&o.Short, "short", false, "tiny sizes for every phase (seconds, for CI); explicit flags still win")
	serverURL := getenv("INTAKE_BENCH_DATABASE_URL")
	if serverURL == "" {
		serverURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	fs.StringVar(&o.ServerURL, "database-url", serverURL, "any database on the Postgres server to create the bench database on (env INTAKE_BENCH_DATABASE_URL)")
	fs.StringVar(&o.Out, "out", "bench.json", "where to write the JSON results (empty: nowhere)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the bench database at the end (its name is printed)")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory with prebuilt intake-api and intake-worker (default: go build them into a temp dir)")
	fs.BoolVar(&o.Quiet, "quiet", false, "print only the results, not the progress lines")
	conc := fs.String("concurrency", "1,8,32", "submit and peer phases: concurrent clients, comma-separated")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "submit, peer and growth phases: measuring time per run (short: 1s)")
	rates := fs.String("rates", "50,200,500,800", "e2e phase: open-loop submit rates per second, comma-separated; the knee is the highest that kept up (short: 20)")
	fs.DurationVar(&o.RateDuration, "rate-duration", 60*time.Second, "e2e and peer phases: how long each rate runs (short: 2s)")
	fs.IntVar(&o.Backlog, "backlog", 50_000, "drain phase: applications waiting when the worker starts (short: 500)")
	fs.IntVar(&o.MemoryBacklog, "memory-backlog", 100_000, "memory phase: events waiting undispatched (short: 2000)")
	fs.DurationVar(&o.MemoryHold, "memory-hold", 10*time.Second, "memory phase: how long the backlog is held back from the running worker (short: 2s)")
	fs.IntVar(&o.GrowthRows, "growth-rows", 1_000_000, "growth phase: existing applications and dispatched events (short: 10000)")
	fs.IntVar(&o.GrowthRounds, "growth-rounds", 20, "growth phase: relay rounds of 500 events timed per size (short: 3)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 30*time.Minute, "longest wait for a backlog to drain before the phase fails (short: 2m)")
	fs.StringVar(&o.SMTPTLS, "smtp-tls", "none", "e2e, drain and memory phases: none, or starttls with a certificate made for the run that the worker is told to trust (SSL_CERT_FILE)")
	fs.DurationVar(&o.IdleWarmup, "idle-warmup", 15*time.Second, "idle phase: time after start-up before counting (short: 2s)")
	fs.DurationVar(&o.IdleDuration, "idle-duration", 30*time.Second, "idle phase: how long commits are counted (short: 3s)")
	fs.Float64Var(&o.OverloadRate, "overload-rate", 0, "overload phase: open-loop submit rate per second, above what the system takes; 0: twice the e2e phase's knee when it ran and found one, else 2000 (short: 100)")
	peerRates := fs.String("peer-rates", "50,500", "peer phase: open-loop submit rates per second, comma-separated (short: 20)")
	fs.DurationVar(&o.OverloadDuration, "overload-duration", 30*time.Second, "overload phase: how long the rate runs (short: 2s)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	if o.Short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		short := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		short("duration", func() { o.Duration = time.Second })
		short("rates", func() { *rates = "20" })
		short("rate-duration", func() { o.RateDuration = 2 * time.Second })
		short("backlog", func() { o.Backlog = 500 })
		short("memory-backlog", func() { o.MemoryBacklog = 2000 })
		short("memory-hold", func() { o.MemoryHold = 2 * time.Second })
		short("growth-rows", func() { o.GrowthRows = 10_000 })
		short("growth-rounds", func() { o.GrowthRounds = 3 })
		short("drain-timeout", func() { o.DrainTimeout = 2 * time.Minute })
		short("idle-warmup", func() { o.IdleWarmup = 2 * time.Second })
		short("idle-duration", func() { o.IdleDuration = 3 * time.Second })
		short("overload-rate", func() { o.OverloadRate = 100 })
		short("peer-rates", func() { *peerRates = "20" })
		short("overload-duration", func() { o.OverloadDuration = 2 * time.Second })
	}

	var errs []error
	for p := range strings.SplitSeq(*phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case !slices.Contains(allPhases, p):
			errs = append(errs, fmt.Errorf("--phases: unknown phase %q (want some of %s)", p, strings.Join(allPhases, ", ")))
		case !slices.Contains(o.Phases, p):
			o.Phases = append(o.Phases, p)
		}
	}
	if o.SMTPTLS != "none" && o.SMTPTLS != "starttls" {
		errs = append(errs, fmt.Errorf("--smtp-tls: %q is neither none nor starttls", o.SMTPTLS))
	}
	if len(o.Phases) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("--phases: no phase selected"))
	}
	for c := range strings.SplitSeq(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 1000 {
			errs = append(errs, fmt.Errorf("--concurrency: %q is not a number from 1 to 1000", c))
			continue
		}
		o.Concurrency = append(o.Concurrency, n)
	}
	o.Rates = parseRates("rates", *rates, &errs)
	o.PeerRates = parseRates("peer-rates", *peerRates, &errs)
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive", name))
		}
	}
	positive("duration", o.Duration)
	positive("rate-duration", o.RateDuration)
	positive("memory-hold", o.MemoryHold)
	positive("drain-timeout", o.DrainTimeout)
	positive("idle-warmup", o.IdleWarmup)
	positive("idle-duration", o.IdleDuration)
	positive("overload-duration", o.OverloadDuration)
	if o.OverloadRate < 0 || o.OverloadRate > 100_000 {
		errs = append(errs, errors.New("--overload-rate must be a rate from 0 to 100000 per second"))
	}
	atLeast := func(name string, v, lo int) {
		if v < lo {
			errs = append(errs, fmt.Errorf("--%s must be at least %d", name, lo))
		}
	}
	atLeast("backlog", o.Backlog, 1)
	atLeast("memory-backlog", o.MemoryBacklog, 1)
	atLeast("growth-rows", o.GrowthRows, 1)
	atLeast("growth-rounds", o.GrowthRounds, 1)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// parseRates reads a comma-separated list of rates per second given to
// flag, adding a problem to errs for each that is not one.
func parseRates(flag, list string, errs *[]error) []float64 {
	var rates []float64
	for r := range strings.SplitSeq(list, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || f <= 0 || f > 100_000 {
			*errs = append(*errs, fmt.Errorf("--%s: %q is not a rate from 0 to 100000 per second", flag, r))
			continue
		}
		rates = append(rates, f)
	}
	return rates
}

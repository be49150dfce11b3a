package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/devmail"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
)

const (
	// restartDelay is how long a crashed child stays down before it is
	// started again.
	restartDelay = time.Second
	// readyTimeout bounds the wait for both children's /readyz at start.
	readyTimeout = time.Minute
	// intakeModule is the module dev builds the binaries from when they are
	// not next to intakectl.
	intakeModule = "github.com/intake/intake"
)

// samplePostings are added to a database without any posting, so there is
// something to apply to right away.
var samplePostings = []application.NewPosting{
	{
		Slug:     "backend-engineer",
		Title:    "Backend engineer (Go)",
		Location: "Berlin or remote (EU)",
		Team:     "Engineering",
		Description: "Build and run the services behind our hiring product in Go and PostgreSQL. " +
			"You will design APIs, keep data correct when machines fail, and share on-call with a small team.",
	},
	{
		Slug:     "product-designer",
		Title:    "Product designer",
		Location: "Lisbon",
		Team:     "Design",
		Description: "Shape how applicants and recruiters use our product, from the first sketch to the shipped screen. " +
			"You will talk to users, prototype quickly and work side by side with engineers.",
		// Optional questions of each kind, to try the form's questions.
		Questions: []application.Question{
			{Key: "work", Label: "Where can we see your work?", Kind: application.KindShortText, Hint: "A link to a portfolio or a case study."},
			{Key: "focus", Label: "Your focus", Kind: application.KindChoice, Choices: []string{"Interaction design", "Visual design", "Research"}},
			{Key: "remote", Label: "Would you like to work remotely?", Kind: application.KindYesNo},
			{Key: "proudest", Label: "A design you are proud of, and why", Kind: application.KindLongText},
		},
	},
}

// devOpts are intakectl dev's flags.
type devOpts struct {
	smtpAddr    string
	mailboxAddr string
	noSamples   bool
}

// dev runs the whole system on this machine until ctx is cancelled: the
// database migrated (and given sample postings), a mail catcher with its
// mailbox page, and intake-api and intake-worker as real processes that are
// restarted when they die. Everything it and its children print goes to
// stdout, one prefixed line at a time. Both children get statusSecret, so
// the worker's email links open on the API.
func dev(ctx context.Context, cfg config.Config, statusSecret string, args []string, stdout io.Writer) error {
	opts, err := parseDevFlags(args)
	if err != nil {
		return err
	}
	apiAddr, err := freeAddr("INTAKE_HTTP_ADDR", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	opsAddr, err := freeAddr("INTAKE_OPS_ADDR", cfg.OpsAddr)
	if err != nil {
		return err
	}
	apiOpsAddr, err := freeAddr("INTAKE_API_OPS_ADDR", cfg.APIOpsAddr)
	if err != nil {
		return err
	}
	con := &console{w: stdout}

	catcher, err := devmail.Start(&devmail.Opts{
		SMTPAddr:    opts.smtpAddr,
		MailboxAddr: opts.mailboxAddr,
		Log:         con.lines("mail"),
	})
	if err != nil {
		// Mailpit, for one, uses the same default ports.
		return fmt.Errorf("%w (is another mail catcher running? choose other ports with --smtp-addr and --mailbox-addr)", err)
	}
	defer catcher.Close()
	con.printf("mail catcher: SMTP on %s, mailbox at %s/", catcher.SMTPAddr(), catcher.MailboxURL())

	bins, err := findBinaries(ctx, con)
	if err != nil {
		return unlessInterrupted(ctx, err)
	}
	defer bins.cleanup()

	if err := prepareDatabase(ctx, cfg, con, !opts.noSamples); err != nil {
		return unlessInterrupted(ctx, err)
	}

	env, publicURL := childEnvironment(cfg, statusSecret, apiAddr, opsAddr, apiOpsAddr, catcher.SMTPAddr())
	procs := startChildren(ctx, con, bins, env, cfg.ShutdownTimeout+5*time.Second)
	stop := func() {
		con.printf("stopping (a second Ctrl-C kills at once)")
		procs.stop()
		if err := catcher.Close(); err != nil {
			con.printf("mail catcher: %v", err)
		}
		con.printf("stopped")
	}

	err = waitReady(ctx,
		readyCheck{"intake-api", "http://" + apiAddr.probe + "/readyz"},
		readyCheck{"intake-worker", "http://" + opsAddr.probe + "/readyz"})
	if err != nil {
		stop()
		return unlessInterrupted(ctx, err)
	}
	printReady(con, readyInfo{
		publicURL:  publicURL,
		mailboxURL: catcher.MailboxURL(),
		opsURL:     "http://" + opsAddr.probe,
		apiPID:     procs.api.PID(),
		workerPID:  procs.worker.PID(),
	})

	<-ctx.Done()
	stop()
	return nil
}

func parseDevFlags(args []string) (devOpts, error) {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o devOpts
	fs.StringVar(&o.smtpAddr, "smtp-addr", devmail.DefaultSMTPAddr, "where the mail catcher takes SMTP")
	fs.StringVar(&o.mailboxAddr, "mailbox-addr", devmail.DefaultMailboxAddr, "where the mailbox page is served")
	fs.BoolVar(&o.noSamples, "no-sample-postings", false, "do not add sample postings to an empty database")
	if err := fs.Parse(args); err != nil {
		return o, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return o, usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	return o, nil
}

// unlessInterrupted drops err when ctx was cancelled: Ctrl-C during start
// is a normal way to stop, not a failure.
func unlessInterrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// prepareDatabase does what intakectl migrate does, then adds the sample
// postings when asked to and there are none at all.
func prepareDatabase(ctx context.Context, cfg config.Config, con *console, samples bool) error {
	created, err := migrate.EnsureDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if created {
		con.printf("created the database")
	}
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: 2, ApplicationName: "intakectl"})
	if err != nil {
		return err
	}
	defer pool.Close()
	// Each applied migration is logged at info; dev keeps its start short
	// and shows only warnings and errors (intakectl migrate lists them).
	m, err := migrate.New(pool, logging.New(con.lines("dev"), max(cfg.LogLevel, slog.LevelWarn), "intakectl"))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(ctx); err != nil {
		return err
	}
	con.printf("schema up to date")
	if !samples {
		return nil
	}
	added, err := addSamplePostings(ctx, postgres.NewStore(pool))
	if err != nil {
		return fmt.Errorf("sample postings: %w", err)
	}
	if len(added) > 0 {
		con.printf("added sample postings: %s", strings.Join(added, ", "))
	}
	return nil
}

// addSamplePostings adds samplePostings when there is no posting at all,
// and returns the slugs it added.
func addSamplePostings(ctx context.Context, store *postgres.Store) ([]string, error) {
	existing, err := store.Postings(ctx)
	if err != nil || len(existing) > 0 {
		return nil, err
	}
	var added []string
	for _, p := range samplePostings {
		if err := p.Validate(); err != nil {
			return added, err
		}
		_, err := store.CreatePosting(ctx, p)
		if errors.Is(err, postgres.ErrSlugTaken) { // another dev got there first
			continue
		}
		if err != nil {
			return added, err
		}
		added = append(added, p.Slug)
	}
	return added, nil
}

// binaries are the paths of the two programs dev runs.
type binaries struct {
	api, worker string
	cleanup     func()
}

// findBinaries uses intake-api and intake-worker from intakectl's own
// directory (an installed or `go build -o bin/ ./cmd/...` set), and
// otherwise builds them from the module around the working directory (the
// case under `go run ./cmd/intakectl dev`).
func findBinaries(ctx context.Context, con *console) (binaries, error) {
	exe, err := os.Executable()
	if err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		dir := filepath.Dir(exe)
		b := binaries{api: filepath.Join(dir, "intake-api"), worker: filepath.Join(dir, "intake-worker"), cleanup: func() {}}
		if isExecutable(b.api) && isExecutable(b.worker) {
			return b, nil
		}
	}

	root, err := moduleRoot()
	if err != nil {
		return binaries{}, fmt.Errorf("intake-api and intake-worker are not next to intakectl (%s) and cannot be built: %w; "+
			"run intakectl dev from the repository, or build all three into one directory with "+
			"`go build -o bin/ ./cmd/...` and run bin/intakectl dev", exe, err)
	}
	dir, err := os.MkdirTemp("", "intake-dev-")
	if err != nil {
		return binaries{}, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	con.printf("building intake-api and intake-worker from %s", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/intake-api", "./cmd/intake-worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return binaries{}, fmt.Errorf("go build ./cmd/intake-api ./cmd/intake-worker in %s: %w\n%s", root, err, out)
	}
	return binaries{api: filepath.Join(dir, "intake-api"), worker: filepath.Join(dir, "intake-worker"), cleanup: cleanup}, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// moduleRoot walks up from the working directory to the go.mod of Intake's
// module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			if mod := modulePath(data); mod != intakeModule {
				return "", fmt.Errorf("%s is module %q, not %s", filepath.Join(dir, "go.mod"), mod, intakeModule)
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it")
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// addr is where a child listens and where dev reaches it.
type addr struct {
	listen string // for the child's environment
	probe  string // host:port to connect to (loopback for an unspecified host)
}

// freeAddr checks that a child can listen on a (port 0 picks a free port
// now, so dev knows where to look), so a port held by another program, or an
// Intake left running, fails here with the variable's name instead of
// answering dev's readiness checks or making the child crash in a loop.
func freeAddr(name, a string) (addr, error) {
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return addr{}, fmt.Errorf("%s %s is not available (is another Intake running?): %w", name, a, err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	host, _, _ := net.SplitHostPort(a)
	probe := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		probe = "127.0.0.1"
	}
	return addr{listen: net.JoinHostPort(host, port), probe: net.JoinHostPort(probe, port)}, nil
}

// childEnvironment is the children's environment: dev's own, pointed at
// the database dev migrated, the addresses it checked, the catcher and the
// status secret. It also returns the public URL the API will use.
func childEnvironment(cfg config.Config, statusSecret string, api, ops, apiOps addr, smtpAddr *net.TCPAddr) (env []string, publicURL string) {
	set := map[string]string{
		"DATABASE_URL":         cfg.DatabaseURL,
		"INTAKE_STATUS_SECRET": statusSecret,
		"INTAKE_HTTP_ADDR":     api.listen,
		"INTAKE_OPS_ADDR":      ops.listen,
		"INTAKE_API_OPS_ADDR":  apiOps.listen,
		"INTAKE_SMTP_HOST":     smtpAddr.IP.String(),
		"INTAKE_SMTP_PORT":     strconv.Itoa(smtpAddr.Port),
		"INTAKE_SMTP_TLS":      "none",
		"INTAKE_SMTP_USERNAME": "", // the catcher takes no authentication
		"INTAKE_SMTP_PASSWORD": "",
	}
	publicURL = cfg.PublicURL.String()
	if os.Getenv("INTAKE_PUBLIC_URL") == "" {
		// Unset: the status links in API answers point at this API wherever
		// it listens.
		publicURL = "http://" + api.probe
		set["INTAKE_PUBLIC_URL"] = publicURL
	}
	if os.Getenv("INTAKE_LOG_LEVEL") == "" {
		set["INTAKE_LOG_LEVEL"] = "info"
	}
	return childEnv(os.Environ(), set), publicURL
}

// childEnv is base with the variables in set replaced.
func childEnv(base []string, set map[string]string) []string {
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; !ok {
			env = append(env, kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		env = append(env, name+"="+set[name])
	}
	return env
}

// readyCheck is a readiness URL and whose it is.
type readyCheck struct{ name, url string }

// waitReady polls each URL until it answers 200, for at most readyTimeout.
func waitReady(ctx context.Context, checks ...readyCheck) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, c := range checks {
		for !answersOK(ctx, client, c.url) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s was not ready (%s) within %s; see its output above", c.name, c.url, readyTimeout)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func answersOK(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

type readyInfo struct {
	publicURL, mailboxURL, opsURL string
	apiPID, workerPID             int
}

func printReady(con *console, r readyInfo) {
	con.printf("ready")
	con.printf("  applicant site   %s/", r.publicURL)
	con.printf("  JSON API         %s/api/v1/jobs", r.publicURL)
	con.printf("  mailbox          %s/", r.mailboxURL)
	con.printf("  worker health    %s/healthz", r.opsURL)
	con.printf("  intake-api       pid %d", r.apiPID)
	con.printf("  intake-worker    pid %d    try a crash: kill -9 %d", r.workerPID, r.workerPID)
	con.printf("Ctrl-C stops everything.")
}

// hurryOnSecondSignal closes killNow when SIGINT or SIGTERM arrives again
// while the children stop, so an impatient operator is not kept waiting for
// the shutdown budget. The returned func stops listening.
func hurryOnSecondSignal(killNow chan<- struct{}) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sig:
			close(killNow)
		case <-done:
		}
	})
	return func() {
		signal.Stop(sig)
		close(done)
		wg.Wait()
	}
}

// children are intake-api and intake-worker under supervision.
type children struct {
	api, worker   *child
	stopSupervise context.CancelFunc
	killNow       chan struct{}
	wg            sync.WaitGroup
}

// startChildren starts both programs and keeps them running until stop.
// budget is how long each gets to exit after SIGTERM before SIGKILL.
func startChildren(ctx context.Context, con *console, bins binaries, env []string, budget time.Duration) *children {
	ctx, cancel := context.WithCancel(ctx)
	g := &children{
		api:           &child{name: "intake-api", path: bins.api, env: env, out: con.lines("api"), con: con},
		worker:        &child{name: "intake-worker", path: bins.worker, env: env, out: con.lines("worker"), con: con},
		stopSupervise: cancel,
		killNow:       make(chan struct{}),
	}
	for _, c := range []*child{g.api, g.worker} {
		g.wg.Go(func() { c.supervise(ctx, budget, g.killNow) })
	}
	return g
}

// stop sends both SIGTERM and waits for them to exit; a second SIGINT or
// SIGTERM to dev meanwhile kills them at once.
func (g *children) stop() {
	stopHurry := hurryOnSecondSignal(g.killNow)
	defer stopHurry()
	g.stopSupervise()
	g.wg.Wait()
}

// child is one supervised process.
type child struct {
	name string // the binary's name, like intake-worker
	path string
	env  []string
	out  *lineWriter
	con  *console

	mu  sync.Mutex
	pid int
}

// PID is the process id of the current (or last) run.
func (c *child) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// supervise runs the child, starting it again restartDelay after it exits,
// until ctx is cancelled; then it stops the child: SIGTERM, and SIGKILL
// after budget or when killNow closes.
func (c *child) supervise(ctx context.Context, budget time.Duration, killNow <-chan struct{}) {
	for {
		proc, exited, err := c.start()
		if err != nil {
			c.con.printf("could not start %s: %v; trying again in %s", c.name, err, restartDelay)
		} else {
			select {
			case err := <-exited:
				c.con.printf("%s (pid %d) exited unexpectedly (%s); restarting in %s", c.name, proc.Pid, exitText(err), restartDelay)
			case <-ctx.Done():
				c.stop(proc, exited, budget, killNow)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(restartDelay):
		}
	}
}

// start runs the binary in its own process group, so a Ctrl-C in the
// terminal reaches dev alone and each child gets exactly one SIGTERM from
// dev (a second signal makes the worker exit at once). On Linux the child
// also gets SIGTERM if dev itself is killed (childProcAttr).
func (c *child) start() (*os.Process, <-chan error, error) {
	cmd := exec.Command(c.path)
	cmd.Env = c.env
	cmd.Stdout = c.out
	cmd.Stderr = c.out
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.pid = cmd.Process.Pid
	c.mu.Unlock()
	c.con.printf("started %s (pid %d)", c.name, cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		c.out.Flush()
		exited <- err
	}()
	return cmd.Process, exited, nil
}

func (c *child) stop(proc *os.Process, exited <-chan error, budget time.Duration, killNow <-chan struct{}) {
	_ = proc.Signal(syscall.SIGTERM)
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case err := <-exited:
		c.con.printf("%s (pid %d) stopped (%s)", c.name, proc.Pid, exitText(err))
		return
	case <-timer.C:
		c.con.printf("%s (pid %d) still running %s after SIGTERM; killing it", c.name, proc.Pid, budget)
	case <-killNow:
		c.con.printf("killing %s (pid %d)", c.name, proc.Pid)
	}
	_ = proc.Kill()
	<-exited
}

func exitText(err error) string {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &exit):
		return exit.ProcessState.String()
	default:
		return err.Error()
	}
}

// console writes whole lines from dev, the catcher and the children onto
// one writer, each prefixed with who wrote it ("api    | ...").
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) println(name, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%-6s | %s\n", name, line)
}

// printf prints one of dev's own lines.
func (c *console) printf(format string, args ...any) {
	c.println("dev", fmt.Sprintf(format, args...))
}

// lines returns a writer that prints what it is given line by line under
// name.
func (c *console) lines(name string) *lineWriter {
	return &lineWriter{con: c, name: name}
}

// maxLine is where a line without an end is printed anyway.
const maxLine = 64 << 10

// lineWriter splits a stream into lines for the console.
type lineWriter struct {
	con  *console
	name string

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	rest := w.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.con.println(w.name, string(bytes.TrimSuffix(rest[:i], []byte("\r"))))
		rest = rest[i+1:]
	}
	if len(rest) >= maxLine {
		w.con.println(w.name, string(rest))
		rest = nil
	}
	w.buf = w.buf[:copy(w.buf, rest)]
	return len(p), nil
}

// Flush prints what is left of an unfinished last line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.con.println(w.name, string(w.buf))
		w.buf = w.buf[:0]
	}
}

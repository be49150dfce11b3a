//go:build drills

package faultdrill

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
)

// Cluster is a private PostgreSQL cluster: its own data directory, its own
// port on 127.0.0.1, trust authentication, fsync on. It can be stopped and
// started again on the same port and data directory while clients keep
// trying to use it.
type Cluster struct {
	Port int

	bin     string // directory holding initdb, pg_ctl, postgres
	dir     string // owned by the cluster's OS user: data/, server.log, the socket
	dataDir string
	logFile string
	cred    *syscall.Credential // nil: run as the current user

	mu      sync.Mutex
	running bool
}

// StartCluster initdbs a cluster in a fresh temporary directory, starts it
// on a free port, and stops and removes it when the test ends (its log is
// printed first if the test failed).
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		tb.Skipf("no PostgreSQL server binaries: %v", err)
	}
	cred, err := clusterCredential()
	if err != nil {
		tb.Skipf("cannot run PostgreSQL as a non-root user: %v", err)
	}

	dir, err := os.MkdirTemp("", "intake-faultdrill-pg-")
	if err != nil {
		tb.Fatalf("temp dir: %v", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("chown %s: %v", dir, err)
		}
	}
	c := &Cluster{
		bin:     bin,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "server.log"),
		cred:    cred,
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("postgres server log (last 60 lines):\n%s", c.LogTail(60))
		}
		if err := c.stop("immediate"); err != nil {
			tb.Errorf("stop cluster: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("remove cluster dir: %v", err)
		}
	})

	if out, err := c.run("initdb", "--pgdata", c.dataDir, "--username", "postgres", "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-instructions"); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Port = freePort(tb)
	conf := strings.Join([]string{
		"",
		"# faultdrill: private, loopback only, durable",
		"listen_addresses = '127.0.0.1'",
		"port = " + strconv.Itoa(c.Port),
		"unix_socket_directories = '" + dir + "'",
		"fsync = on",
		"synchronous_commit = on",
		"full_page_writes = on",
		"max_connections = 200",
		"shared_buffers = 64MB",
		"log_min_messages = warning",
		"log_connections = off",
		"",
	}, "\n")
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatalf("open postgresql.conf: %v", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatalf("write postgresql.conf: %v", err)
	}
	if err := c.Start(); err != nil {
		tb.Fatalf("%v", err)
	}
	return c
}

// URL is the connection string of database db on this cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Addr is the cluster's host:port.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, err := c.run("pg_ctl", "start", "--pgdata", c.dataDir, "--log", c.logFile, "--wait", "--timeout", "60"); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, c.LogTail(30))
	}
	c.running = true
	return nil
}

// Stop shuts the server down in fast mode: open transactions are rolled
// back, sessions are terminated, and it waits until the server is gone.
func (c *Cluster) Stop() error { return c.stop("fast") }

// Restart stops the server (fast) and starts it again.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start()
}

func (c *Cluster) stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	if out, err := c.run("pg_ctl", "stop", "--pgdata", c.dataDir, "--mode", mode, "--wait", "--timeout", "60"); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w\n%s", mode, err, out)
	}
	c.running = false
	return nil
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CreateIntakeDB creates the database "intake" and applies Intake's and
// River's migrations to it with the code intakectl migrate runs. It returns
// the database's URL.
func (c *Cluster) CreateIntakeDB(ctx context.Context) (string, error) {
	url := c.URL("intake")
	if _, err := migrate.EnsureDatabase(ctx, url); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	pool, err := postgres.NewPool(ctx, url, nil)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	m, err := migrate.New(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	defer m.Close()
	if err := m.Up(ctx); err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	return url, nil
}

// run runs one of the cluster's programs as the cluster's OS user, in the
// cluster's directory (the user may not be able to enter the caller's).
func (c *Cluster) run(program string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, program), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C", "HOME=" + c.dir, "TZ=UTC"}
	// Its own process group: a ^C to the test does not reach the server
	// before the cleanup stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	return cmd.CombinedOutput()
}

// postgresBinDir finds initdb and pg_ctl: INTAKE_DRILL_PG_BIN, the newest
// /usr/lib/postgresql/*/bin (Debian's layout), or PATH.
func postgresBinDir() (string, error) {
	if dir := os.Getenv("INTAKE_DRILL_PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("initdb not found under /usr/lib/postgresql/*/bin or on PATH; set INTAKE_DRILL_PG_BIN")
}

// clusterCredential is the user the cluster runs as: nobody else when the
// tests are not root, the "postgres" user (or INTAKE_DRILL_PG_USER) when
// they are.
func clusterCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("INTAKE_DRILL_PG_USER")
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s is root", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; the server would then fail to start
// and say so.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

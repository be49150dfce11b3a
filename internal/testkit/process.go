package testkit

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu   sync.Mutex
	buildDir  string
	buildDone = map[string]string{}
)

// RemoveBinaries deletes what Binary built; call it from TestMain after
// the tests ran.
func RemoveBinaries() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
		buildDir, buildDone = "", map[string]string{}
	}
}

// Binary builds ./cmd/<name> once per test binary and returns the
// executable's path. It is built without -race: process tests measure
// crashes and throughput, and the in-process tests cover data races.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := buildDone[name]; ok {
		return path
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "intake-bin-")
		if err != nil {
			tb.Fatalf("temp dir: %v", err)
		}
		buildDir = dir
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	path := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", path, "./cmd/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	buildDone[name] = path
	return path
}

// Process is a running intake binary with its output captured.
type Process struct {
	cmd  *exec.Cmd
	Logs *Buffer
	done chan struct{}
	err  error
}

// StartProcess runs the binary at path with exactly env (plus PATH and
// HOME) and kills it when the test ends if it is still running.
func StartProcess(tb testing.TB, path string, env map[string]string) *Process {
	tb.Helper()
	cmd := exec.Command(path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	logs := &Buffer{}
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", path, err)
	}
	p := &Process{cmd: cmd, Logs: logs, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("%s output:\n%s", filepath.Base(path), logs.String())
		}
	})
	return p
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate sends SIGTERM and waits up to timeout for a clean exit,
// returning the exit error (nil for status 0).
func (p *Process) Terminate(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		tb.Fatalf("process did not exit within %s of SIGTERM", timeout)
		return nil
	}
}

// WaitLog waits until a JSON log line with msg appears and returns it.
func (p *Process) WaitLog(tb testing.TB, msg string, timeout time.Duration) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sc := bufio.NewScanner(strings.NewReader(p.Logs.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
				return line
			}
		}
		select {
		case <-p.done:
			tb.Fatalf("process exited (%v) before logging %q:\n%s", p.err, msg, p.Logs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %q log line within %s:\n%s", msg, timeout, p.Logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

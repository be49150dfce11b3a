package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildBinaries builds intake-api and intake-worker into dir, as they ship
// (no -race).
func buildBinaries(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/intake/intake/cmd/intake-api", "github.com/intake/intake/cmd/intake-worker")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// process is a running intake binary. Its output is read line by line: the
// last lines are kept for error messages, warnings are counted, and the
// lines the harness waits for are kept.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	rss  *rssMonitor

	mu       sync.Mutex
	tail     []string
	warnings int
	waits    map[string]*logWait
}

type logWait struct {
	ready chan struct{}
	line  map[string]any
}

const tailLines = 40

// startProcess runs the binary at path with exactly env, waiting for log
// lines whose msg is one of want.
func startProcess(path string, env []string, want ...string) (*process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	cmd.Env = env
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = childAttr()
	p := &process{name: filepath.Base(path), cmd: cmd, done: make(chan struct{}), waits: map[string]*logWait{}}
	for _, m := range want {
		p.waits[m] = &logWait{ready: make(chan struct{})}
	}
	if err := cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	_ = w.Close()
	p.rss = startRSSMonitor(cmd.Process.Pid)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		p.readLogs(r)
	}()
	go func() {
		p.err = cmd.Wait()
		<-readDone
		_ = r.Close()
		p.rss.stop()
		close(p.done)
	}()
	return p, nil
}

func (p *process) readLogs(r *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.mu.Lock()
		if len(p.tail) == tailLines {
			p.tail = p.tail[1:]
		}
		p.tail = append(p.tail, string(line))
		if bytes.Contains(line, []byte(`"level":"WARN"`)) || bytes.Contains(line, []byte(`"level":"ERROR"`)) {
			p.warnings++
		}
		for msg, wait := range p.waits {
			if wait.line == nil && bytes.Contains(line, []byte(`"msg":"`+msg+`"`)) {
				var m map[string]any
				if json.Unmarshal(line, &m) == nil && m["msg"] == msg {
					wait.line = m
					close(wait.ready)
				}
			}
		}
		p.mu.Unlock()
	}
}

// waitLog waits for the JSON log line whose msg was asked for at start.
func (p *process) waitLog(ctx context.Context, msg string, timeout time.Duration) (map[string]any, error) {
	wait := p.waits[msg]
	if wait == nil {
		return nil, fmt.Errorf("%s: not waiting for %q", p.name, msg)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-wait.ready:
		p.mu.Lock()
		defer p.mu.Unlock()
		return wait.line, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited (%v) before logging %q:\n%s", p.name, p.err, msg, p.output())
	case <-timer.C:
		return nil, fmt.Errorf("%s: no %q log line within %s:\n%s", p.name, msg, timeout, p.output())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// output is the process's last log lines.
func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

func (p *process) warningCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.warnings
}

// exited reports whether the process has ended, with its output if so.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, p.output())
	default:
		return nil
	}
}

// stop sends SIGTERM, waits up to timeout for the process to end, then
// kills it. It is safe to call more than once.
func (p *process) stop(timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rssMonitor polls a process's resident memory every 100 ms.
type rssMonitor struct {
	pid     int
	started time.Time
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once

	mu        sync.Mutex
	lastKB    int64
	peakKB    int64 // since start: polled VmRSS, or VmHWM when higher
	windowKB  int64 // since the last resetWindow
	samples   []RSSSample
	lastEvery time.Time
}

func startRSSMonitor(pid int) *rssMonitor {
	m := &rssMonitor{pid: pid, started: time.Now(), quit: make(chan struct{}), stopped: make(chan struct{})}
	go m.loop()
	return m
}

func (m *rssMonitor) loop() {
	defer close(m.stopped)
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		m.poll()
		select {
		case <-m.quit:
			return
		case <-ticker.C:
		}
	}
}

func (m *rssMonitor) poll() {
	rss, hwm, err := readStatus(m.pid)
	if err != nil {
		return // gone, or not Linux
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastKB = rss
	m.peakKB = max(m.peakKB, rss, hwm)
	m.windowKB = max(m.windowKB, rss)
	if now.Sub(m.lastEvery) >= time.Second {
		m.lastEvery = now
		m.samples = append(m.samples, RSSSample{Seconds: round(now.Sub(m.started).Seconds(), 1), MiB: round(mib(rss), 1)})
	}
}

func (m *rssMonitor) stop() {
	m.once.Do(func() { close(m.quit) })
	<-m.stopped
}

// peak is the highest resident memory seen since start, in MiB.
func (m *rssMonitor) peak() float64 {
	m.poll()
	m.mu.Lock()
	defer m.mu.Unlock()
	return mib(m.peakKB)
}

// current is the last resident memory polled, in MiB.
func (m *rssMonitor) current() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return mib(m.lastKB)
}

// resetWindow starts a new window and returns the peak of the last one.
func (m *rssMonitor) resetWindow() float64 {
	m.poll()
	m.mu.Lock()
	defer m.mu.Unlock()
	peak := m.windowKB
	m.windowKB = m.lastKB
	return mib(peak)
}

func (m *rssMonitor) sampleList() []RSSSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RSSSample(nil), m.samples...)
}

// readStatus reads VmRSS and VmHWM (kB) from /proc/<pid>/status.
func readStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		var kb int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			if _, err := fmt.Sscanf(line[len("VmRSS:"):], "%d", &kb); err == nil {
				rss = kb
			}
		case strings.HasPrefix(line, "VmHWM:"):
			if _, err := fmt.Sscanf(line[len("VmHWM:"):], "%d", &kb); err == nil {
				hwm = kb
			}
		}
	}
	if rss < 1024 {
		// Not exec'd yet (or a zombie): not the binary's memory.
		return 0, 0, errors.New("no VmRSS")
	}
	return rss, hwm, nil
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

func round(f float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(f*p+0.5)) / p
}

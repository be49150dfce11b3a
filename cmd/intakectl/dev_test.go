package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// TestDev runs `intakectl dev` as an operator would, with intake-api and
// intake-worker built next to it, and uses the system it starts: the sample
// postings, an application, its email in the mailbox and the status link in
// it, a worker crash and its recovery, and a clean stop. No
// INTAKE_STATUS_SECRET is set: dev makes one and gives it to both children.
func TestDev(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	httpAddr, opsAddr, smtpAddr, mailboxAddr := freeLoopback(t), freeLoopback(t), freeLoopback(t), freeLoopback(t)
	d := startDev(t, filepath.Join(bin, "intakectl"), []string{"dev", "--smtp-addr", smtpAddr, "--mailbox-addr", mailboxAddr}, map[string]string{
		"DATABASE_URL":            testkit.NewDB(t),
		"INTAKE_HTTP_ADDR":        httpAddr,
		"INTAKE_OPS_ADDR":         opsAddr,
		"INTAKE_API_OPS_ADDR":     freeLoopback(t),
		"INTAKE_SHUTDOWN_TIMEOUT": "5s",
	})
	apiURL, mailboxURL := "http://"+httpAddr, "http://"+mailboxAddr

	d.waitLine(t, `^dev +\| ready$`, 2*time.Minute)
	require.Contains(t, d.out.String(), "dev    |   JSON API         "+apiURL+"/api/v1/jobs")
	require.Contains(t, d.out.String(), "dev    |   mailbox          "+mailboxURL+"/")
	require.Contains(t, d.out.String(), "dev    |   worker health    http://"+opsAddr+"/healthz")
	apiPID := d.pid(t, `^dev +\|   intake-api +pid (\d+)$`)
	workerPID := d.pid(t, `^dev +\|   intake-worker +pid (\d+) +try a crash: kill -9 \d+$`)
	require.Regexp(t, `(?m)^api +\| \{.*"binary":"intake-api"`, d.out.String(), "the API's lines are prefixed")
	require.Regexp(t, `(?m)^worker \| \{.*"binary":"intake-worker"`, d.out.String(), "the worker's lines are prefixed")

	// The empty database got the sample postings.
	var jobs struct {
		Jobs []struct{ Slug, Title string } `json:"jobs"`
	}
	status, body := httpDo(t, http.MethodGet, apiURL+"/api/v1/jobs", nil, "")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &jobs))
	var slugs []string
	for _, j := range jobs.Jobs {
		slugs = append(slugs, j.Slug)
	}
	require.ElementsMatch(t, []string{"backend-engineer", "product-designer"}, slugs)

	// An application's confirmation lands in the mailbox and on stdout.
	first := apply(t, apiURL, "backend-engineer", "dev-test-1", `{"full_name":"Ada Lovelace","email":"ada@example.com"}`)
	waitMailbox(t, mailboxURL, "We received your application: Backend engineer (Go)", time.Minute)
	d.waitLine(t, `^mail +\| \d\d:\d\d:\d\d <confirmation\.[0-9a-f-]+@intake\.localhost> to ada@example\.com "We received your application: Backend engineer \(Go\)" `+regexp.QuoteMeta(mailboxURL)+`/messages/1$`, 10*time.Second)
	requireStatusLinkOpens(t, mailboxURL+"/messages/1", apiURL, first)

	// A killed worker is started again, and the next application's email
	// still arrives.
	require.NoError(t, syscall.Kill(workerPID, syscall.SIGKILL))
	d.waitLine(t, `^dev +\| intake-worker \(pid `+strconv.Itoa(workerPID)+`\) exited unexpectedly \(signal: killed\); restarting in 1s$`, 10*time.Second)
	newWorkerPID := 0
	d.waitFor(t, "a new intake-worker", 10*time.Second, func(out string) bool {
		for _, m := range regexp.MustCompile(`(?m)^dev +\| started intake-worker \(pid (\d+)\)$`).FindAllStringSubmatch(out, -1) {
			if pid, _ := strconv.Atoi(m[1]); pid != workerPID {
				newWorkerPID = pid
				return true
			}
		}
		return false
	})
	second := apply(t, apiURL, "product-designer", "dev-test-2", `{"full_name":"Grace Hopper","email":"grace@example.com"}`)
	waitMailbox(t, mailboxURL, "We received your application: Product designer", time.Minute)
	requireStatusLinkOpens(t, mailboxURL+"/messages/2", apiURL, second)

	// SIGTERM stops everything and exits 0.
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("intakectl dev did not exit within 30s of SIGTERM")
	}
	require.NoError(t, d.err, "exit status")
	require.Regexp(t, `(?m)^dev +\| intake-api \(pid \d+\) stopped \(exit status 0\)$`, d.out.String())
	require.Regexp(t, `(?m)^dev +\| intake-worker \(pid \d+\) stopped \(exit status 0\)$`, d.out.String())
	require.Regexp(t, `(?m)^dev +\| stopped$`, d.out.String())
	for _, pid := range []int{apiPID, workerPID, newWorkerPID} {
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d is gone", pid)
	}
}

func TestDevUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCtl(t, "postgres://postgres@127.0.0.1:1/never-used?sslmode=disable")
	for _, args := range [][]string{
		{"dev", "--smtp", "x"},
		{"dev", "extra"},
	} {
		out, _, err := c.run(args...)
		var usage usageError
		require.ErrorAs(t, err, &usage, "%v", args)
		require.Contains(t, err.Error(), "dev [--smtp-addr A]", "the usage text lists dev")
		require.Empty(t, out)
	}
}

// A port in use fails at once, naming the setting, before anything starts.
func TestDevPortTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() }) // after the parallel subtests
	taken := ln.Addr().String()

	tests := []struct {
		name string
		env  map[string]string
		args []string
		msg  string
	}{
		{"api", map[string]string{"INTAKE_HTTP_ADDR": taken}, nil, "INTAKE_HTTP_ADDR " + taken + " is not available"},
		{"ops", map[string]string{"INTAKE_OPS_ADDR": taken}, nil, "INTAKE_OPS_ADDR " + taken + " is not available"},
		{"api ops", map[string]string{"INTAKE_API_OPS_ADDR": taken}, nil, "INTAKE_API_OPS_ADDR " + taken + " is not available"},
		{"smtp", nil, []string{"--smtp-addr", taken}, "choose other ports with --smtp-addr and --mailbox-addr"},
		{"mailbox", nil, []string{"--mailbox-addr", taken}, "choose other ports with --smtp-addr and --mailbox-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCtl(t, "postgres://postgres@127.0.0.1:1/never-used?sslmode=disable")
			c.env["INTAKE_HTTP_ADDR"] = freeLoopback(t)
			c.env["INTAKE_OPS_ADDR"] = freeLoopback(t)
			c.env["INTAKE_API_OPS_ADDR"] = freeLoopback(t)
			maps.Copy(c.env, tt.env)
			args := []string{"dev", "--smtp-addr", freeLoopback(t), "--mailbox-addr", freeLoopback(t)}
			out, _, err := c.run(append(args, tt.args...)...)
			require.ErrorContains(t, err, tt.msg)
			require.Empty(t, out, "nothing started")
		})
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	env := childEnv(
		[]string{"PATH=/bin", "INTAKE_SMTP_TLS=starttls", "DATABASE_URL=postgres://elsewhere", "HOME=/root"},
		map[string]string{"INTAKE_SMTP_TLS": "none", "DATABASE_URL": "postgres://here", "INTAKE_SMTP_USERNAME": ""},
	)
	require.Equal(t, []string{
		"PATH=/bin", "HOME=/root",
		"DATABASE_URL=postgres://here", "INTAKE_SMTP_TLS=none", "INTAKE_SMTP_USERNAME=",
	}, env)
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := (&console{w: &out}).lines("worker")
	for _, chunk := range []string{`{"msg":"sta`, "rting\"}\r\n{\"msg\":\"a\"}\n{\"msg\":", `"b"}` + "\n", "no newline at exit"} {
		_, err := w.Write([]byte(chunk))
		require.NoError(t, err)
	}
	w.Flush()
	require.Equal(t, "worker | {\"msg\":\"starting\"}\nworker | {\"msg\":\"a\"}\nworker | {\"msg\":\"b\"}\nworker | no newline at exit\n", out.String())
}

// buildBinaries builds intakectl, intake-api and intake-worker side by side,
// as an operator's `go build -o bin/ ./cmd/...` would, so dev finds its
// siblings.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/intakectl", "./cmd/intake-api", "./cmd/intake-worker")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return dir
}

// freeLoopback returns a loopback address whose port was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// devProcess is a running intakectl dev.
type devProcess struct {
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
	err  error
}

// startDev runs the binary with exactly env (plus PATH and HOME). If the
// test ends with it still running, it and every child it reported are
// killed, so nothing outlives the test.
func startDev(t *testing.T, path string, args []string, env map[string]string) *devProcess {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	d := &devProcess{cmd: cmd, out: &testkit.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = d.out
	cmd.Stderr = d.out
	require.NoError(t, cmd.Start())
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Kill()
			<-d.done
			// The children run in their own process groups and outlive a
			// killed dev: end the ones it started.
			for _, m := range regexp.MustCompile(`(?m)^dev +\| started intake-\w+ \(pid (\d+)\)$`).FindAllStringSubmatch(d.out.String(), -1) {
				pid, _ := strconv.Atoi(m[1])
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("intakectl dev output:\n%s", d.out.String())
		}
	})
	return d
}

// waitFor polls dev's output until cond holds, failing if dev exits first.
func (d *devProcess) waitFor(t *testing.T, what string, timeout time.Duration, cond func(out string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(d.out.String()) {
		select {
		case <-d.done:
			t.Fatalf("intakectl dev exited (%v) before %s", d.err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLine waits for an output line matching pattern and returns its
// submatches.
func (d *devProcess) waitLine(t *testing.T, pattern string, timeout time.Duration) []string {
	t.Helper()
	re := regexp.MustCompile("(?m)" + pattern)
	var m []string
	d.waitFor(t, "line matching "+pattern, timeout, func(out string) bool {
		m = re.FindStringSubmatch(out)
		return m != nil
	})
	return m
}

// pid reads a PID from a line already printed.
func (d *devProcess) pid(t *testing.T, pattern string) int {
	t.Helper()
	m := regexp.MustCompile("(?m)" + pattern).FindStringSubmatch(d.out.String())
	require.NotNil(t, m, "no line matching %s", pattern)
	pid, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return pid
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpDo(t *testing.T, method, url string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if header != nil {
		req.Header = header
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// apply submits an application and returns the status_url of the 201.
func apply(t *testing.T, apiURL, slug, key, body string) string {
	t.Helper()
	status, resp := httpDo(t, http.MethodPost, apiURL+"/api/v1/jobs/"+slug+"/applications", http.Header{
		"Content-Type":    {"application/json"},
		"Idempotency-Key": {key},
	}, body)
	require.Equal(t, http.StatusCreated, status, resp)
	var created struct {
		StatusURL string `json:"status_url"`
	}
	require.NoError(t, json.Unmarshal([]byte(resp), &created))
	return created.StatusURL
}

// requireStatusLinkOpens finds the status page link in the email shown at
// messageURL and checks that it opens on the API, with the token of the
// API's own status_url: the worker and the API share dev's status secret.
func requireStatusLinkOpens(t *testing.T, messageURL, apiURL, statusURL string) {
	t.Helper()
	status, page := httpDo(t, http.MethodGet, messageURL, nil, "")
	require.Equal(t, http.StatusOK, status)
	link := regexp.MustCompile(regexp.QuoteMeta(apiURL) + `/applications/[0-9a-f-]{36}\?token=[A-Za-z0-9_-]{22}`).FindString(page)
	require.NotEmpty(t, link, "no status link on INTAKE_PUBLIC_URL in the email:\n%s", page)
	emailToken := link[strings.Index(link, "token=")+len("token="):]
	require.True(t, strings.HasSuffix(statusURL, "?token="+emailToken), "the email's token %s is not the one in status_url %s", emailToken, statusURL)
	status, page = httpDo(t, http.MethodGet, link, nil, "")
	require.Equal(t, http.StatusOK, status, page)
	require.Contains(t, page, "Application received")
}

// waitMailbox waits until the mailbox page lists a message with subject.
func waitMailbox(t *testing.T, mailboxURL, subject string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, page := httpDo(t, http.MethodGet, mailboxURL+"/", nil, "")
		require.Equal(t, http.StatusOK, status)
		if regexp.MustCompile(`<a href="/messages/\d+">` + regexp.QuoteMeta(subject) + `</a>`).MatchString(page) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox does not list %q within %s:\n%s", subject, timeout, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

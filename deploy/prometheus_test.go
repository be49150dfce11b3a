package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// ruleFile is a Prometheus rule file, decoded strictly: a misspelt key
// fails the test instead of being ignored.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func loadAlerts(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	require.NoError(t, err)
	var f ruleFile
	require.NoError(t, yaml.UnmarshalStrict(b, &f))
	return f
}

func alertRules(f ruleFile) []rule {
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// tool finds a program of Debian's prometheus package. Under CI=true a
// missing one fails the test (.ci/run installs it); elsewhere it skips.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install -y prometheus)", name)
		}
		t.Skipf("%s is not installed (apt-get install -y prometheus)", name)
	}
	return path
}

// The alerts the README's runbook answers, each with a link to its entry.
var wantAlerts = []string{
	"IntakeNoWorker", "IntakeOutboxStuck", "IntakeOutboxQuarantined", "IntakeEmailPermanentFailures",
	"IntakeEmailSendsFailing", "IntakeEmailRetryBacklog", "IntakeAnalyticsBacklog", "IntakeAPI5xx", "IntakeNotReady",
}

// readmeAnchors are the anchors GitHub makes for the README's headings.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, m := range regexp.MustCompile(`(?m)^#{1,6} (.+)$`).FindAllStringSubmatch(string(b), -1) {
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")] = true
	}
	return anchors
}

func TestAlertRulesRunbooks(t *testing.T) {
	t.Parallel()
	anchors := readmeAnchors(t)
	var names []string
	for _, r := range alertRules(loadAlerts(t)) {
		names = append(names, r.Alert)
		require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], "%s: severity", r.Alert)
		require.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
		link, err := url.Parse(r.Annotations["runbook_url"])
		require.NoError(t, err, r.Alert)
		require.Equal(t, "https://github.com/intake/intake", link.Scheme+"://"+link.Host+link.Path, "%s: runbook_url points into the README", r.Alert)
		require.Equal(t, "alert-"+strings.ToLower(r.Alert), link.Fragment, "%s: runbook anchor", r.Alert)
		require.True(t, anchors[link.Fragment], "%s: the README has no heading for #%s", r.Alert, link.Fragment)
	}
	require.ElementsMatch(t, wantAlerts, names)
}

// promtool checks the rules and runs the synthetic series of
// prometheus/alerts_test.yml against them.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "intake.json"))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

var metricName = regexp.MustCompile(`\b(intake_[a-z0-9_]+|up)\b`)

// usedMetrics are the metric names the alerts and the dashboard query.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	for _, r := range alertRules(loadAlerts(t)) {
		for _, m := range metricName.FindAllString(r.Expr, -1) {
			used[m] = append(used[m], "alert "+r.Alert)
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = append(used[m], "panel "+p.Title)
			}
		}
	}
	return used
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	require.Equal(t, "Intake", d.Title)
	require.NotEmpty(t, d.UID)
	titles := map[string]bool{}
	for _, p := range d.Panels {
		require.False(t, titles[p.Title], "two panels titled %q", p.Title)
		titles[p.Title] = true
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, metricName.FindAllString(tg.Expr, -1), "panel %q: %q names no Intake metric", p.Title, tg.Expr)
		}
	}
	for _, main := range []string{"Submits by outcome", "Outbox backlog", "Oldest undispatched event", "River jobs by kind and state",
		"Deliveries by state (sent excluded)", "Email sends by result", "API requests by status code"} {
		require.True(t, titles[main], "the dashboard needs a %q panel", main)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// exposedNames are the sample names in a scrape (histograms add _bucket,
// _sum and _count).
func exposedNames(text string) map[string]bool {
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`).FindAllStringSubmatch(text, -1) {
		names[m[1]] = true
	}
	return names
}

// TestOperationsEndToEnd runs real intake-api and intake-worker processes
// and a real Prometheus (Debian's package) that scrapes their ops
// listeners: personal data submitted reaches no label, the public address
// serves no metrics, every metric the alerts and the dashboard query
// exists, and when the worker stops, IntakeNoWorker and IntakeOutboxStuck
// fire. The rules are alerts.yml with every "for" cut to 2 s and the
// outbox threshold to 3 s, so the test takes seconds, not minutes.
func TestOperationsEndToEnd(t *testing.T) {
	t.Parallel()
	prometheus := tool(t, "prometheus")
	ctx := context.Background()

	dbURL := testkit.NewDB(t)
	pool, err := postgres.NewPool(ctx, dbURL, nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = postgres.NewStore(pool).CreatePosting(ctx, application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	smtp := testkit.StartSMTP(t)

	env := map[string]string{
		"DATABASE_URL":         dbURL,
		"INTAKE_STATUS_SECRET": testkit.StatusSecret,
		"INTAKE_HTTP_ADDR":     "127.0.0.1:0",
		"INTAKE_API_OPS_ADDR":  "127.0.0.1:0",
		"INTAKE_OPS_ADDR":      "127.0.0.1:0",
	}
	for k, v := range smtp.Env() {
		env[k] = v
	}
	api := testkit.StartProcess(t, testkit.Binary(t, "intake-api"), env)
	apiOps := api.WaitLog(t, "ops listening", 30*time.Second)["addr"].(string)
	apiURL := "http://" + api.WaitLog(t, "listening", 30*time.Second)["addr"].(string)
	worker := testkit.StartProcess(t, testkit.Binary(t, "intake-worker"), env)
	workerOps := worker.WaitLog(t, "ops listening", 30*time.Second)["addr"].(string)
	worker.WaitLog(t, "working", 30*time.Second)

	submit := func(key, name, email string) {
		body := fmt.Sprintf(`{"full_name":%q,"email":%q,"phone":"+44 20 7946 0958","cover_letter":"Analytical engines, mostly.","links":["https://lovelace.example/notes"]}`, name, email)
		req, err := http.NewRequest(http.MethodPost, apiURL+"/api/v1/jobs/go-engineer/applications", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
	}
	submit("key-ada", "Ada Lovelace", "ada.lovelace@example.org")
	smtp.WaitMessages(t, 1, 30*time.Second)

	// Both listeners, once the send is counted.
	var apiText, workerText string
	require.Eventually(t, func() bool {
		_, workerText = httpGet(t, "http://"+workerOps+"/metrics")
		return strings.Contains(workerText, `intake_email_sends_total{code_class="2xx",result="sent"} 1`)
	}, 30*time.Second, 100*time.Millisecond)
	status, apiText := httpGet(t, "http://"+apiOps+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, apiText, `intake_submits_total{outcome="created"} 1`)
	require.Contains(t, apiText, `intake_http_requests_total{code="201",method="POST",route="/api/v1/jobs/:slug/applications"} 1`)
	for _, personal := range []string{"Ada", "Lovelace", "ada.lovelace", "example.org", "7946", "Analytical", "lovelace.example"} {
		require.NotContains(t, apiText, personal, "the API's metrics carry personal data")
		require.NotContains(t, workerText, personal, "the worker's metrics carry personal data")
	}
	status, _ = httpGet(t, apiURL+"/metrics")
	require.Equal(t, http.StatusNotFound, status, "the public address serves no metrics")

	exposed := exposedNames(apiText)
	for n := range exposedNames(workerText) {
		exposed[n] = true
	}
	for name, users := range usedMetrics(t) {
		if name == "up" {
			continue // Prometheus's own
		}
		require.True(t, exposed[name], "%s (used by %v) is not exposed by either binary", name, users)
	}

	// Prometheus, scraping both every second.
	dir := t.TempDir()
	f := loadAlerts(t)
	for gi := range f.Groups {
		for ri := range f.Groups[gi].Rules {
			r := &f.Groups[gi].Rules[ri]
			if r.For != "" {
				r.For = "2s"
			}
			if r.Alert == "IntakeOutboxStuck" {
				require.Contains(t, r.Expr, "> 60")
				r.Expr = strings.Replace(r.Expr, "> 60", "> 3", 1)
			}
		}
	}
	rules, err := yaml.Marshal(f)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o600))
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: intake-api
    static_configs: [{targets: [%q]}]
  - job_name: intake-worker
    static_configs: [{targets: [%q]}]
`, apiOps, workerOps)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600))
	promAddr := freePort(t)
	// testkit.StartProcess runs a program without arguments; a script
	// gives Prometheus its flags.
	script := filepath.Join(dir, "prometheus.sh")
	require.NoError(t, os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nexec %s --config.file=%s --storage.tsdb.path=%s --web.listen-address=%s\n",
		prometheus, filepath.Join(dir, "prometheus.yml"), filepath.Join(dir, "data"), promAddr)), 0o700))
	prom := testkit.StartProcess(t, script, nil)
	t.Cleanup(func() { _ = prom.Terminate(t, 30*time.Second) })
	promURL := "http://" + promAddr

	query := func(q string) []any {
		resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []any `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil {
			return nil
		}
		return r.Data.Result
	}
	require.Eventually(t, func() bool { return len(query(`up == 1`)) == 2 }, 60*time.Second, 200*time.Millisecond,
		"Prometheus scrapes both binaries")
	require.Eventually(t, func() bool { return len(query(`intake_ready == 1`)) == 2 }, 30*time.Second, 200*time.Millisecond)

	firing := func() []string {
		resp, err := http.Get(promURL + "/api/v1/alerts")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil {
			return nil
		}
		var names []string
		for _, a := range r.Data.Alerts {
			if a.State == "firing" {
				names = append(names, a.Labels["alertname"])
			}
		}
		return names
	}
	// Before its first scrape Prometheus saw no worker; once both answer,
	// nothing fires.
	require.Eventually(t, func() bool { return len(firing()) == 0 }, 30*time.Second, 250*time.Millisecond,
		"nothing fires while both run: %v", firing())

	// The worker stops; an application arrives and its event waits.
	require.NoError(t, worker.Terminate(t, 60*time.Second))
	submit("key-grace", "Grace Hopper", "grace.hopper@example.org")
	require.Eventually(t, func() bool {
		f := firing()
		return slices.Contains(f, "IntakeNoWorker") && slices.Contains(f, "IntakeOutboxStuck")
	}, 60*time.Second, 250*time.Millisecond, "IntakeNoWorker and IntakeOutboxStuck fire")
}

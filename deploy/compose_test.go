// Package deploy holds the container build (Dockerfile) and the checks on
// it and on the top-level docker-compose.yml. No Docker engine is needed:
// the compose file is loaded and validated with compose-go (Docker Compose's
// own loader), the Dockerfile and .dockerignore are read as text.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"go/version"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

// The loader must not leave goroutines behind; the binaries built for the
// end-to-end test are removed after the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { testkit.RemoveBinaries() }))
}

// The three services that run the Intake image, and the program each runs.
var intakeServices = map[string]string{
	"migrate": "intakectl",
	"api":     "intake-api",
	"worker":  "intake-worker",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// loadCompose loads a compose file the way `docker compose` does: schema
// validation, interpolation, normalisation and the consistency check all on.
// The environment is fixed (not the test process's), so the result does not
// depend on the machine.
func loadCompose(t *testing.T, file string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithName("intake"),
		cli.WithWorkingDirectory(repoRoot(t)),
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithLoadOptions(func(o *loader.Options) { o.SkipValidation = false }),
	)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

func setup(t *testing.T) *types.Project {
	t.Helper()
	project, err := loadCompose(t, filepath.Join(repoRoot(t), "docker-compose.yml"))
	require.NoError(t, err, "docker-compose.yml does not load")
	return project
}

func TestComposeHasTheServices(t *testing.T) {
	t.Parallel()
	project := setup(t)

	require.Equal(t, "intake", project.Name)
	require.ElementsMatch(t, []string{"postgres", "mailpit", "migrate", "api", "worker"}, project.ServiceNames())
}

// The loader really validates: a misspelt key is an error, not ignored.
func TestComposeLoaderRejectsUnknownKeys(t *testing.T) {
	t.Parallel()
	compose, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	require.NoError(t, err)
	broken := strings.Replace(string(compose), "healthcheck:", "healthchek:", 1)
	require.NotEqual(t, string(compose), broken)
	file := filepath.Join(t.TempDir(), "docker-compose.yml")
	require.NoError(t, os.WriteFile(file, []byte(broken), 0o600))

	_, err = loadCompose(t, file)
	require.ErrorContains(t, err, "healthchek")
}

func TestComposeIntakeServicesRunTheImageBuiltFromDeployDockerfile(t *testing.T) {
	t.Parallel()
	project := setup(t)

	images := map[string]bool{}
	for name, program := range intakeServices {
		svc := project.Services[name]
		require.NotNil(t, svc.Build, "%s has no build section", name)
		require.Equal(t, repoRoot(t), svc.Build.Context, "%s builds from the repository root", name)
		require.Equal(t, "deploy/Dockerfile", svc.Build.Dockerfile, "%s", name)
		images[svc.Image] = true
		require.Equal(t, types.ShellCommand{"/usr/local/bin/" + program}, svc.Entrypoint, "%s's entrypoint", name)
	}
	require.Len(t, images, 1, "migrate, api and worker must share one image: %v", images)

	require.Equal(t, types.ShellCommand{"migrate"}, project.Services["migrate"].Command)
	require.Equal(t, "no", project.Services["migrate"].Restart, "migrate is one-shot")
}

func TestComposeDependsOn(t *testing.T) {
	t.Parallel()
	project := setup(t)

	want := map[string]map[string]string{
		"migrate": {"postgres": types.ServiceConditionHealthy},
		"api": {
			"postgres": types.ServiceConditionHealthy,
			"migrate":  types.ServiceConditionCompletedSuccessfully,
		},
		"worker": {
			"postgres": types.ServiceConditionHealthy,
			"migrate":  types.ServiceConditionCompletedSuccessfully,
			"mailpit":  types.ServiceConditionHealthy,
		},
	}
	for name, deps := range want {
		got := map[string]string{}
		for dep, d := range project.Services[name].DependsOn {
			require.True(t, d.Required, "%s → %s must be required", name, dep)
			got[dep] = d.Condition
		}
		require.Equal(t, deps, got, "%s's depends_on", name)
	}
}

func TestComposeHealthchecks(t *testing.T) {
	t.Parallel()
	project := setup(t)

	for _, name := range []string{"postgres", "mailpit"} {
		hc := project.Services[name].HealthCheck
		require.NotNil(t, hc, "%s needs a healthcheck: others wait for service_healthy", name)
		require.False(t, hc.Disable, "%s", name)
		require.NotEmpty(t, hc.Test, "%s", name)
	}

	// The image is distroless: a check must exec a binary of the image
	// (CMD, never CMD-SHELL) and ask the service's own listener.
	listener := map[string]string{"api": "INTAKE_HTTP_ADDR", "worker": "INTAKE_OPS_ADDR"}
	for name, addrVar := range listener {
		hc := project.Services[name].HealthCheck
		require.NotNil(t, hc, "%s", name)
		require.Len(t, hc.Test, 4, "%s: [CMD, intakectl, health, URL]", name)
		require.Equal(t, []string{"CMD", "/usr/local/bin/intakectl", "health"}, []string(hc.Test[:3]), "%s", name)
		u, err := url.Parse(hc.Test[3])
		require.NoError(t, err)
		_, port, err := net.SplitHostPort(env(t, project, name)[addrVar])
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:"+port, u.Host, "%s's healthcheck must ask its own %s", name, addrVar)
		require.Equal(t, "/healthz", u.Path, "%s", name)
	}
}

// Every variable set for an Intake service is one the code reads, and the
// values pass the same validation the binaries run at start: a typo in the
// name or the value fails here instead of in a container.
func TestComposeEnvironmentIsIntakeConfiguration(t *testing.T) {
	t.Parallel()
	project := setup(t)

	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	for name := range intakeServices {
		vars := env(t, project, name)
		for k := range vars {
			require.True(t, known[k], "%s sets %s, which is not in config.Vars", name, k)
		}
		cfg, err := config.Load(func(k string) string { return vars[k] })
		require.NoError(t, err, "%s's environment", name)

		db, err := url.Parse(cfg.DatabaseURL)
		require.NoError(t, err)
		require.Equal(t, "postgres", db.Hostname(), "%s's DATABASE_URL must name the postgres service", name)

		if name == "migrate" {
			continue
		}
		// Docker sends SIGKILL after stop_grace_period: it must outlast the
		// graceful shutdown.
		grace := project.Services[name].StopGracePeriod
		require.NotNil(t, grace, "%s needs a stop_grace_period", name)
		require.Greater(t, time.Duration(*grace), cfg.ShutdownTimeout,
			"%s's stop_grace_period must be longer than INTAKE_SHUTDOWN_TIMEOUT", name)
	}

	api := env(t, project, "api")
	require.Equal(t, "0.0.0.0:8080", api["INTAKE_HTTP_ADDR"])
	require.Equal(t, "http://localhost:8080", api["INTAKE_PUBLIC_URL"])

	worker := env(t, project, "worker")
	// The worker writes the status links that the api opens.
	require.Equal(t, api["INTAKE_PUBLIC_URL"], worker["INTAKE_PUBLIC_URL"], "the email's links must point at the api")
	require.NotEmpty(t, api["INTAKE_STATUS_SECRET"])
	for _, name := range []string{"worker", "migrate"} {
		require.Equal(t, api["INTAKE_STATUS_SECRET"], env(t, project, name)["INTAKE_STATUS_SECRET"],
			"%s needs the api's INTAKE_STATUS_SECRET", name)
	}
	require.Equal(t, "mailpit", worker["INTAKE_SMTP_HOST"])
	require.Equal(t, "1025", worker["INTAKE_SMTP_PORT"])
	require.Equal(t, "none", worker["INTAKE_SMTP_TLS"])
}

func TestComposePublishedPorts(t *testing.T) {
	t.Parallel()
	project := setup(t)

	for _, p := range []struct {
		service string
		port    uint32
	}{
		{"api", 8080},
		{"mailpit", 8025},
		{"mailpit", 1025},
	} {
		published := slices.ContainsFunc(project.Services[p.service].Ports, func(c types.ServicePortConfig) bool {
			return c.Target == p.port && c.Published == strconv.Itoa(int(p.port))
		})
		require.True(t, published, "%s must publish port %d", p.service, p.port)
	}
}

// env is a service's environment as plain strings; a variable without a
// value (passed through from the host) is an error in this file.
func env(t *testing.T, project *types.Project, service string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for k, v := range project.Services[service].Environment {
		require.NotNil(t, v, "%s: %s has no value", service, k)
		vars[k] = *v
	}
	return vars
}

// dockerfile is deploy/Dockerfile cut into stages of instructions, with line
// continuations joined and comments dropped. args holds the ARG defaults
// declared before the first FROM.
type dockerfile struct {
	args   map[string]string
	stages [][]instruction
}

type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)

	df := dockerfile{args: map[string]string{}}
	var pending string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && pending == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending += cont + " "
			continue
		}
		line = pending + line
		pending = ""
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			df.stages = append(df.stages, []instruction{in})
		case len(df.stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			df.args[k] = v
		case len(df.stages) == 0:
			t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
		default:
			df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], in)
		}
	}
	require.NoError(t, sc.Err())
	require.Empty(t, pending, "Dockerfile ends in a line continuation")
	require.GreaterOrEqual(t, len(df.stages), 2, "the Dockerfile must be multi-stage")
	return df
}

// image is a FROM instruction's image, flags (--platform) skipped and
// global ARGs expanded.
func (in instruction) image(df dockerfile) string {
	for _, f := range strings.Fields(in.args) {
		if !strings.HasPrefix(f, "--") {
			return os.Expand(f, func(k string) string { return df.args[k] })
		}
	}
	return ""
}

// The runtime image runs as a non-root user, from a static base.
func TestDockerfileFinalStageIsNonRoot(t *testing.T) {
	t.Parallel()
	df := readDockerfile(t)

	final := df.stages[len(df.stages)-1]
	from := final[0].image(df)
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	nonRootBase := strings.HasPrefix(from, "gcr.io/distroless/") && strings.HasSuffix(from, ":nonroot")
	nonRootUser := user != "" && !slices.Contains([]string{"root", "0", "root:root", "0:0"}, user)
	require.True(t, nonRootBase || nonRootUser, "final stage %q runs as %q", from, user)
	if user != "" {
		require.True(t, nonRootUser, "final stage sets USER %s", user)
	}

	var entrypoint []string
	for _, in := range final {
		if in.cmd == "ENTRYPOINT" {
			require.NoError(t, json.Unmarshal([]byte(in.args), &entrypoint), "ENTRYPOINT must be exec form (no shell in the image)")
		}
	}
	require.Equal(t, []string{"/usr/local/bin/intake-api"}, entrypoint)

	// Variables the image sets are ones the code reads.
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	for _, in := range final {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			k, _, ok := strings.Cut(kv, "=")
			require.True(t, ok, "ENV %s: use the KEY=value form", in.args)
			require.True(t, known[k], "the image sets %s, which is not in config.Vars", k)
		}
	}
}

// The builder compiles every program in cmd/ as a static binary, with the
// Go release go.mod asks for, and the runtime stage gets all of them.
func TestDockerfileBuildsEveryCommandStatically(t *testing.T) {
	t.Parallel()
	df := readDockerfile(t)

	builder := df.stages[0][0].image(df)
	tag, ok := strings.CutPrefix(builder, "golang:")
	require.True(t, ok, "the builder is %q, want an official golang image", builder)
	goVersion := "go" + strings.SplitN(tag, "-", 2)[0]
	require.True(t, version.IsValid(goVersion), "builder tag %q", tag)
	want := goModVersion(t)
	if goVersion == version.Lang(goVersion) {
		// A floating tag (1.26) is that release's newest patch.
		require.Equal(t, version.Lang(want), goVersion, "builder's Go release vs go.mod")
	} else {
		require.Equal(t, version.Lang(want), version.Lang(goVersion), "builder's Go release vs go.mod")
		require.GreaterOrEqual(t, version.Compare(goVersion, want), 0, "builder's Go is older than go.mod's")
	}

	var build string
	var modulesFirst bool
	for i, in := range df.stages[0] {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go mod download") {
			modulesFirst = i > 0 && df.stages[0][i-1].cmd == "COPY" &&
				strings.Fields(df.stages[0][i-1].args)[0] == "go.mod" && build == ""
		}
	}
	require.True(t, modulesFirst, "COPY go.mod go.sum, then `go mod download`, before the sources and the build")
	require.NotEmpty(t, build, "no RUN ... go build in the first stage")
	require.Contains(t, build, "CGO_ENABLED=0")
	require.Contains(t, build, "-trimpath")

	// intake-bench measures a system from outside; it has no place in the
	// image that runs one.
	notShipped := map[string]bool{"intake-bench": true}
	commands, err := os.ReadDir("../cmd")
	require.NoError(t, err)
	for _, c := range commands {
		if c.IsDir() && !notShipped[c.Name()] {
			require.Regexp(t, `(^|\s)\./cmd/`+regexp.QuoteMeta(c.Name())+`(\s|$)`, build, "cmd/%s is not built", c.Name())
		}
	}

	final := df.stages[len(df.stages)-1]
	copied := slices.ContainsFunc(final, func(in instruction) bool {
		return in.cmd == "COPY" && strings.Contains(in.args, "--from=") && strings.HasSuffix(in.args, " /usr/local/bin/")
	})
	require.True(t, copied, "the final stage must copy the binaries to /usr/local/bin/")
}

func goModVersion(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, m, "go.mod has no go line")
	return "go" + string(m[1])
}

// .dockerignore is an allowlist, so a new directory of sources or embedded
// files would silently be missing from the build context; without a Docker
// engine here, this is where that shows. The matching follows Docker's rules:
// the last matching pattern wins, and a pattern matching a parent directory
// matches everything below it.
func TestDockerignoreSendsWhatTheBuildReadsAndNothingElse(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	ignore := parseDockerignore(t, string(raw))

	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps",
		"-f", `{{if and .Module .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}`,
		"./cmd/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	require.NoError(t, err)

	needed := []string{"go.mod", "go.sum"}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		dir, err := filepath.Rel(root, fields[0])
		require.NoError(t, err)
		for _, f := range fields[1:] {
			needed = append(needed, filepath.ToSlash(filepath.Join(dir, f)))
		}
	}
	require.Greater(t, len(needed), 10, "go list found too little: %s", out)
	for _, f := range needed {
		require.False(t, ignore.excludes(f), ".dockerignore leaves out %s, which the build reads", f)
	}

	for _, f := range []string{
		".git/HEAD", ".ci/run", "README.md", "docker-compose.yml", "deploy/Dockerfile",
		"cmd/intake-api/run_test.go", "internal/mail/testdata/x.golden",
		"cmd/intake-api/intake-api.test", "internal/postgres/cpu.prof", "bench.out",
	} {
		require.True(t, ignore.excludes(f), ".dockerignore sends %s", f)
	}
}

type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(t *testing.T, text string) dockerignore {
	t.Helper()
	var d dockerignore
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := strings.HasPrefix(line, "!")
		pattern := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(pattern); i++ {
			switch {
			case strings.HasPrefix(pattern[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(pattern[i:], "**"):
				re.WriteString(".*")
				i++
			case pattern[i] == '*':
				re.WriteString("[^/]*")
			case pattern[i] == '?':
				re.WriteString("[^/]")
			case pattern[i] == '[' || pattern[i] == '\\':
				t.Fatalf(".dockerignore: %q uses a pattern feature this test does not read", line)
			default:
				re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), negate})
	}
	return d
}

func (d dockerignore) excludes(file string) bool {
	excluded := false
	for _, p := range d {
		for prefix := file; ; prefix = path.Dir(prefix) {
			if p.re.MatchString(prefix) {
				excluded = !p.negate
				break
			}
			if !strings.Contains(prefix, "/") {
				break
			}
		}
	}
	return excluded
}

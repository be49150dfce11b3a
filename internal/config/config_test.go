package config_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
)

// statusSecret is a valid INTAKE_STATUS_SECRET, the one variable without a
// default.
const statusSecret = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// env returns a getenv over the given name/value pairs plus the required
// INTAKE_STATUS_SECRET (a pair may override it, "" unsets it); anything
// else is unset, so a test never depends on the machine's environment.
func env(pairs ...string) func(string) string {
	m := map[string]string{"INTAKE_STATUS_SECRET": statusSecret}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(name string) string { return m[name] }
}

// specDefaults is the table in SPEC section 8: names and defaults operators'
// scripts rely on.
var specDefaults = map[string]string{
	"DATABASE_URL":            "postgres://postgres@127.0.0.1:5432/intake?sslmode=disable",
	"INTAKE_HTTP_ADDR":        "127.0.0.1:8080",
	"INTAKE_PUBLIC_URL":       "http://127.0.0.1:8080",
	"INTAKE_OPS_ADDR":         "127.0.0.1:8081",
	"INTAKE_SMTP_HOST":        "127.0.0.1",
	"INTAKE_SMTP_PORT":        "1025",
	"INTAKE_SMTP_TLS":         "starttls",
	"INTAKE_SMTP_USERNAME":    "",
	"INTAKE_SMTP_PASSWORD":    "",
	"INTAKE_MAIL_FROM":        "Intake <no-reply@intake.localhost>",
	"INTAKE_ANALYTICS_SINK":   "postgres",
	"INTAKE_ANALYTICS_URL":    "",
	"INTAKE_SHUTDOWN_TIMEOUT": "30s",
	"INTAKE_LOG_LEVEL":        "info",
	"INTAKE_STATUS_SECRET":    "", // required: no default
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env())
	require.NoError(t, err)

	require.Equal(t, specDefaults["DATABASE_URL"], cfg.DatabaseURL)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
	require.Equal(t, "http://127.0.0.1:8080", cfg.PublicURL.String())
	require.Equal(t, "127.0.0.1:8081", cfg.OpsAddr)
	require.Equal(t, "127.0.0.1", cfg.SMTPHost)
	require.Equal(t, 1025, cfg.SMTPPort)
	require.Equal(t, "starttls", cfg.SMTPTLS)
	require.Empty(t, cfg.SMTPUsername)
	require.Empty(t, cfg.SMTPPassword)
	require.NotNil(t, cfg.MailFrom)
	require.Equal(t, "Intake", cfg.MailFrom.Name)
	require.Equal(t, "no-reply@intake.localhost", cfg.MailFrom.Address)
	require.Equal(t, "postgres", cfg.AnalyticsSink)
	require.Nil(t, cfg.AnalyticsURL)
	require.Equal(t, 30*time.Second, cfg.ShutdownTimeout)
	require.Equal(t, slog.LevelInfo, cfg.LogLevel)

	// The variables beyond SPEC section 8 have sane defaults too.
	require.Positive(t, cfg.DBMaxConns)
	require.Positive(t, cfg.RequestTimeout)
	require.Positive(t, cfg.IdempotencyWait)
	require.Less(t, cfg.IdempotencyWait, cfg.RequestTimeout)
	require.GreaterOrEqual(t, cfg.IdempotencyTTL, 24*time.Hour, "SPEC invariant 3: keys live at least 24 h")
	require.Positive(t, cfg.MaxBodyBytes)
	require.EqualValues(t, 5242880, cfg.MaxCVBytes)
	require.Positive(t, cfg.RateLimit)
	require.Positive(t, cfg.RateBurst)
	require.False(t, cfg.TrustProxy, "trusting X-Forwarded-For must be opted into")
	require.False(t, cfg.StatusTokens.Rotating(), "no previous status secret unless one is given")
	// A killed worker's jobs run again within 15 s: called dead, then
	// rescued by the next beat of another worker.
	require.LessOrEqual(t, cfg.WorkerDeadAfter+cfg.HeartbeatInterval, 10*time.Second)
}

func TestVarsMatchSpec(t *testing.T) {
	t.Parallel()
	byName := map[string]config.Var{}
	for _, v := range config.Vars {
		_, dup := byName[v.Name]
		require.False(t, dup, "%s listed twice in config.Vars", v.Name)
		byName[v.Name] = v
		require.True(t, v.Name == "DATABASE_URL" || strings.HasPrefix(v.Name, "INTAKE_"), "%s: SPEC section 7 allows DATABASE_URL and INTAKE_* only", v.Name)
		require.NotEmpty(t, v.Help, "%s has no help text for the README", v.Name)
	}
	for name, def := range specDefaults {
		v, ok := byName[name]
		require.True(t, ok, "%s (SPEC section 8) missing from config.Vars", name)
		require.Equal(t, def, v.Default, "%s default", name)
	}
	require.True(t, byName["DATABASE_URL"].Secret)
	require.True(t, byName["INTAKE_SMTP_PASSWORD"].Secret)
	require.True(t, byName["INTAKE_STATUS_SECRET"].Secret)
	require.True(t, byName["INTAKE_STATUS_SECRET_PREVIOUS"].Secret)
}

func TestVarsAreRead(t *testing.T) {
	t.Parallel()
	// Every documented variable is read by Load (and nothing undocumented).
	read := map[string]bool{}
	getenv := env()
	_, err := config.Load(func(name string) string {
		read[name] = true
		return getenv(name)
	})
	require.NoError(t, err)
	for _, v := range config.Vars {
		require.True(t, read[v.Name], "%s is documented but never read", v.Name)
	}
	require.Len(t, read, len(config.Vars), "Load reads a variable config.Vars does not document")
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(
		"DATABASE_URL", "postgres://app:pw@db.internal:6432/intake_prod?sslmode=require",
		"INTAKE_DB_MAX_CONNS", "40",
		"INTAKE_HTTP_ADDR", ":9000",
		"INTAKE_PUBLIC_URL", "https://jobs.example.com/careers/",
		"INTAKE_OPS_ADDR", "0.0.0.0:0",
		"INTAKE_SHUTDOWN_TIMEOUT", "1m30s",
		"INTAKE_LOG_LEVEL", "debug",
		"INTAKE_REQUEST_TIMEOUT", "20s",
		"INTAKE_IDEMPOTENCY_WAIT", "5s",
		"INTAKE_IDEMPOTENCY_TTL", "24h",
		"INTAKE_MAX_BODY_BYTES", "131072",
		"INTAKE_MAX_CV_BYTES", "1048576",
		"INTAKE_RATE_LIMIT", "0",
		"INTAKE_RATE_BURST", "1",
		"INTAKE_TRUST_PROXY", "true",
		"INTAKE_SMTP_HOST", "smtp.example.com",
		"INTAKE_SMTP_PORT", "465",
		"INTAKE_SMTP_TLS", "tls",
		"INTAKE_SMTP_USERNAME", "mailer",
		"INTAKE_SMTP_PASSWORD", "hunter2",
		"INTAKE_MAIL_FROM", "jobs@example.com",
		"INTAKE_ANALYTICS_SINK", "http",
		"INTAKE_ANALYTICS_URL", "https://analytics.example.com/ingest",
	))
	require.NoError(t, err)
	require.Equal(t, "postgres://app:pw@db.internal:6432/intake_prod?sslmode=require", cfg.DatabaseURL)
	require.EqualValues(t, 40, cfg.DBMaxConns)
	require.Equal(t, ":9000", cfg.HTTPAddr)
	require.Equal(t, "https://jobs.example.com/careers", cfg.PublicURL.String(), "trailing slash trimmed")
	require.Equal(t, "0.0.0.0:0", cfg.OpsAddr)
	require.Equal(t, 90*time.Second, cfg.ShutdownTimeout)
	require.Equal(t, slog.LevelDebug, cfg.LogLevel)
	require.Equal(t, 20*time.Second, cfg.RequestTimeout)
	require.Equal(t, 5*time.Second, cfg.IdempotencyWait)
	require.Equal(t, 24*time.Hour, cfg.IdempotencyTTL)
	require.EqualValues(t, 131072, cfg.MaxBodyBytes)
	require.EqualValues(t, 1048576, cfg.MaxCVBytes)
	require.Zero(t, cfg.RateLimit)
	require.Equal(t, 1, cfg.RateBurst)
	require.True(t, cfg.TrustProxy)
	require.Equal(t, "smtp.example.com", cfg.SMTPHost)
	require.Equal(t, 465, cfg.SMTPPort)
	require.Equal(t, "tls", cfg.SMTPTLS)
	require.Equal(t, "mailer", cfg.SMTPUsername)
	require.Equal(t, "hunter2", cfg.SMTPPassword)
	require.Equal(t, "jobs@example.com", cfg.MailFrom.Address)
	require.Equal(t, "http", cfg.AnalyticsSink)
	require.Equal(t, "https://analytics.example.com/ingest", cfg.AnalyticsURL.String())
}

// The weekly report's recipients and application retention: off by
// default, read when set.
func TestLoadReportAndApplicationRetention(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env())
	require.NoError(t, err)
	require.Empty(t, cfg.ReportTo)
	require.Zero(t, cfg.ApplicationRetention)
	cfg, err = config.Load(env("INTAKE_APPLICATION_RETENTION", "0"))
	require.NoError(t, err)
	require.Zero(t, cfg.ApplicationRetention, "0 is off")
	cfg, err = config.Load(env("INTAKE_REPORT_TO", " ops@example.com, lead@example.com ", "INTAKE_APPLICATION_RETENTION", "4320h"))
	require.NoError(t, err)
	require.Equal(t, []string{"ops@example.com", "lead@example.com"}, cfg.ReportTo)
	require.Equal(t, 180*24*time.Hour, cfg.ApplicationRetention)
}

func TestLoadLogLevels(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		cfg, err := config.Load(env("INTAKE_LOG_LEVEL", value))
		require.NoError(t, err, value)
		require.Equal(t, want, cfg.LogLevel, value)
	}
}

func TestLoadSMTPTLSModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"none", "starttls", "tls"} {
		cfg, err := config.Load(env("INTAKE_SMTP_TLS", mode))
		require.NoError(t, err, mode)
		require.Equal(t, mode, cfg.SMTPTLS)
	}
}

func TestLoadBadValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		bad  string // the variable the error must name
	}{
		{"smtp tls ssl", []string{"INTAKE_SMTP_TLS", "ssl"}, "INTAKE_SMTP_TLS"},
		{"smtp tls upper case", []string{"INTAKE_SMTP_TLS", "TLS"}, "INTAKE_SMTP_TLS"},
		{"smtp port zero", []string{"INTAKE_SMTP_PORT", "0"}, "INTAKE_SMTP_PORT"},
		{"smtp port too big", []string{"INTAKE_SMTP_PORT", "65536"}, "INTAKE_SMTP_PORT"},
		{"smtp port word", []string{"INTAKE_SMTP_PORT", "smtp"}, "INTAKE_SMTP_PORT"},
		{"smtp username without password", []string{"INTAKE_SMTP_USERNAME", "mailer"}, "INTAKE_SMTP_PASSWORD"},
		{"smtp password without username", []string{"INTAKE_SMTP_PASSWORD", "pw"}, "INTAKE_SMTP_PASSWORD"},
		{"shutdown timeout word", []string{"INTAKE_SHUTDOWN_TIMEOUT", "abc"}, "INTAKE_SHUTDOWN_TIMEOUT"},
		{"shutdown timeout without unit", []string{"INTAKE_SHUTDOWN_TIMEOUT", "30"}, "INTAKE_SHUTDOWN_TIMEOUT"},
		{"shutdown timeout negative", []string{"INTAKE_SHUTDOWN_TIMEOUT", "-5s"}, "INTAKE_SHUTDOWN_TIMEOUT"},
		{"public url ftp", []string{"INTAKE_PUBLIC_URL", "ftp://x"}, "INTAKE_PUBLIC_URL"},
		{"public url relative", []string{"INTAKE_PUBLIC_URL", "/careers"}, "INTAKE_PUBLIC_URL"},
		{"public url without host", []string{"INTAKE_PUBLIC_URL", "https://"}, "INTAKE_PUBLIC_URL"},
		{"analytics http without url", []string{"INTAKE_ANALYTICS_SINK", "http"}, "INTAKE_ANALYTICS_URL"},
		{"analytics url not http", []string{"INTAKE_ANALYTICS_SINK", "http", "INTAKE_ANALYTICS_URL", "kafka://broker"}, "INTAKE_ANALYTICS_URL"},
		{"analytics sink unknown", []string{"INTAKE_ANALYTICS_SINK", "kafka"}, "INTAKE_ANALYTICS_SINK"},
		{"idempotency ttl below 24h", []string{"INTAKE_IDEMPOTENCY_TTL", "1h"}, "INTAKE_IDEMPOTENCY_TTL"},
		{"idempotency ttl just below 24h", []string{"INTAKE_IDEMPOTENCY_TTL", "23h59m59s"}, "INTAKE_IDEMPOTENCY_TTL"},
		{"idempotency wait equal to request timeout", []string{"INTAKE_IDEMPOTENCY_WAIT", "10s", "INTAKE_REQUEST_TIMEOUT", "10s"}, "INTAKE_IDEMPOTENCY_WAIT"},
		{"idempotency wait above request timeout", []string{"INTAKE_IDEMPOTENCY_WAIT", "5s", "INTAKE_REQUEST_TIMEOUT", "1s"}, "INTAKE_IDEMPOTENCY_WAIT"},
		{"request timeout word", []string{"INTAKE_REQUEST_TIMEOUT", "soon"}, "INTAKE_REQUEST_TIMEOUT"},
		{"database url garbage", []string{"DATABASE_URL", "garbage"}, "DATABASE_URL"},
		{"database url bad port", []string{"DATABASE_URL", "postgres://h:notaport/db"}, "DATABASE_URL"},
		{"database url bad sslmode", []string{"DATABASE_URL", "postgres://h/db?sslmode=sometimes"}, "DATABASE_URL"},
		{"log level verbose", []string{"INTAKE_LOG_LEVEL", "verbose"}, "INTAKE_LOG_LEVEL"},
		{"log level upper case", []string{"INTAKE_LOG_LEVEL", "INFO"}, "INTAKE_LOG_LEVEL"},
		{"http addr without port", []string{"INTAKE_HTTP_ADDR", "localhost"}, "INTAKE_HTTP_ADDR"},
		{"http addr port out of range", []string{"INTAKE_HTTP_ADDR", "127.0.0.1:70000"}, "INTAKE_HTTP_ADDR"},
		{"ops addr garbage", []string{"INTAKE_OPS_ADDR", "everywhere"}, "INTAKE_OPS_ADDR"},
		{"db max conns zero", []string{"INTAKE_DB_MAX_CONNS", "0"}, "INTAKE_DB_MAX_CONNS"},
		{"max body bytes word", []string{"INTAKE_MAX_BODY_BYTES", "64k"}, "INTAKE_MAX_BODY_BYTES"},
		{"max cv bytes word", []string{"INTAKE_MAX_CV_BYTES", "5MiB"}, "INTAKE_MAX_CV_BYTES"},
		{"max cv bytes too small", []string{"INTAKE_MAX_CV_BYTES", "100"}, "INTAKE_MAX_CV_BYTES"},
		{"max cv bytes too large", []string{"INTAKE_MAX_CV_BYTES", "1073741824"}, "INTAKE_MAX_CV_BYTES"},
		{"rate limit negative", []string{"INTAKE_RATE_LIMIT", "-1"}, "INTAKE_RATE_LIMIT"},
		{"rate burst zero", []string{"INTAKE_RATE_BURST", "0"}, "INTAKE_RATE_BURST"},
		{"trust proxy yes", []string{"INTAKE_TRUST_PROXY", "yes"}, "INTAKE_TRUST_PROXY"},
		{"mail from garbage", []string{"INTAKE_MAIL_FROM", "not an address"}, "INTAKE_MAIL_FROM"},
		// An email attempt (send within the job's timeout, then its record)
		// must be over before its job can be rescued and sent again.
		{"rescue 1ms after the job timeout", []string{"INTAKE_SMTP_TIMEOUT", "1s", "INTAKE_JOB_TIMEOUT", "2s", "INTAKE_RECORD_TIMEOUT", "1s", "INTAKE_RESCUE_AFTER", "2001ms"}, "INTAKE_RESCUE_AFTER"},
		{"rescue as soon as job and record end", []string{"INTAKE_JOB_TIMEOUT", "30s", "INTAKE_RECORD_TIMEOUT", "30s"}, "INTAKE_RESCUE_AFTER"},
		{"smtp 14s job 14.5s rescue 15s", []string{"INTAKE_SMTP_TIMEOUT", "14s", "INTAKE_JOB_TIMEOUT", "14500ms", "INTAKE_RESCUE_AFTER", "15s"}, "INTAKE_RESCUE_AFTER"},
		// A lease spans two heartbeats, and ends before its worker may be
		// called dead.
		{"email lease under two heartbeats", []string{"INTAKE_HEARTBEAT_INTERVAL", "2s", "INTAKE_EMAIL_LEASE", "3999ms"}, "INTAKE_EMAIL_LEASE"},
		{"worker dead as the lease ends", []string{"INTAKE_EMAIL_LEASE", "5s", "INTAKE_WORKER_DEAD_AFTER", "5s"}, "INTAKE_WORKER_DEAD_AFTER"},
		{"worker dead before the lease ends", []string{"INTAKE_EMAIL_LEASE", "10s"}, "INTAKE_WORKER_DEAD_AFTER"},
		{"worker dead within a beat of the lease's end", []string{"INTAKE_EMAIL_LEASE", "5s", "INTAKE_HEARTBEAT_INTERVAL", "2s", "INTAKE_WORKER_DEAD_AFTER", "6s"}, "INTAKE_WORKER_DEAD_AFTER"},
		{"heartbeat interval without unit", []string{"INTAKE_HEARTBEAT_INTERVAL", "2"}, "INTAKE_HEARTBEAT_INTERVAL"},
		{"org name blank", []string{"INTAKE_ORG_NAME", "   "}, "INTAKE_ORG_NAME"},
		{"org logo not a URL", []string{"INTAKE_ORG_LOGO_URL", "logo.png"}, "INTAKE_ORG_LOGO_URL"},
		{"org contact with a display name", []string{"INTAKE_ORG_CONTACT", "Jobs <jobs@example.com>"}, "INTAKE_ORG_CONTACT"},
		{"record timeout under a second", []string{"INTAKE_RECORD_TIMEOUT", "500ms"}, "INTAKE_RECORD_TIMEOUT"},
		{"smtp timeout as long as the job", []string{"INTAKE_SMTP_TIMEOUT", "30s"}, "INTAKE_SMTP_TIMEOUT"},
		{"status secret missing", []string{"INTAKE_STATUS_SECRET", ""}, "INTAKE_STATUS_SECRET"},
		{"status secret of 31 bytes", []string{"INTAKE_STATUS_SECRET", strings.Repeat("ab", 31)}, "INTAKE_STATUS_SECRET"},
		{"status secret not hex", []string{"INTAKE_STATUS_SECRET", "hex:" + strings.Repeat("xy", 32)}, "INTAKE_STATUS_SECRET"},
		{"status secret a pass phrase", []string{"INTAKE_STATUS_SECRET", "correct horse battery staple and more words"}, "INTAKE_STATUS_SECRET"},
		{"report to with a display name", []string{"INTAKE_REPORT_TO", "Ops <ops@example.com>"}, "INTAKE_REPORT_TO"},
		{"report to not an address", []string{"INTAKE_REPORT_TO", "ops@example.com,nobody"}, "INTAKE_REPORT_TO"},
		{"report to empty item", []string{"INTAKE_REPORT_TO", "ops@example.com,"}, "INTAKE_REPORT_TO"},
		{"application retention under 24h", []string{"INTAKE_APPLICATION_RETENTION", "23h"}, "INTAKE_APPLICATION_RETENTION"},
		{"application retention without unit", []string{"INTAKE_APPLICATION_RETENTION", "30"}, "INTAKE_APPLICATION_RETENTION"},
		{"application retention negative", []string{"INTAKE_APPLICATION_RETENTION", "-720h"}, "INTAKE_APPLICATION_RETENTION"},
		{"previous status secret of 16 bytes", []string{"INTAKE_STATUS_SECRET_PREVIOUS", strings.Repeat("ab", 16)}, "INTAKE_STATUS_SECRET_PREVIOUS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(tt.env...))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.bad)
			// Only the bad variable is blamed: one line, starting with its name.
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, 1, "one bad value, one error: %v", err)
			require.True(t, strings.HasPrefix(lines[0], tt.bad+" "), "error starts with the variable's name: %q", lines[0])
		})
	}
}

func TestLoadStatusSecrets(t *testing.T) {
	t.Parallel()
	const id = "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	// One secret, every accepted spelling: the same tokens.
	var tokens []string
	for _, value := range []string{
		statusSecret,
		strings.TrimPrefix(statusSecret, "hex:"),
		base64.StdEncoding.EncodeToString(raw),
		"base64:" + base64.RawURLEncoding.EncodeToString(raw),
	} {
		cfg, err := config.Load(env("INTAKE_STATUS_SECRET", value))
		require.NoError(t, err, value)
		tokens = append(tokens, cfg.StatusTokens.Derive(id))
	}
	require.Equal(t, []string{tokens[0], tokens[0], tokens[0], tokens[0]}, tokens)

	// A rotation: the new secret mints, the previous one still opens links.
	newSecret := "hex:" + strings.Repeat("5a", 32)
	rotating, err := config.Load(env("INTAKE_STATUS_SECRET", newSecret, "INTAKE_STATUS_SECRET_PREVIOUS", statusSecret))
	require.NoError(t, err)
	rotated, err := config.Load(env("INTAKE_STATUS_SECRET", newSecret))
	require.NoError(t, err)
	require.True(t, rotating.StatusTokens.Rotating())
	require.NotEqual(t, tokens[0], rotating.StatusTokens.Derive(id))
	require.Equal(t, rotated.StatusTokens.Derive(id), rotating.StatusTokens.Derive(id))
	require.True(t, rotating.StatusTokens.Verify(id, tokens[0]), "a link made before the rotation")
	require.False(t, rotated.StatusTokens.Verify(id, tokens[0]), "once the previous secret is dropped")
}

func TestLoadStatusSecretMissing(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env("INTAKE_STATUS_SECRET", ""))
	require.EqualError(t, err, "INTAKE_STATUS_SECRET is required: at least 32 random bytes as hex or base64, "+
		"the same for the API and every worker (make one with `openssl rand -hex 32`) (got \"\")")
}

func TestLoadBadRequestTimeoutIsNotAlsoBlamedOnWait(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env("INTAKE_REQUEST_TIMEOUT", "soon"))
	require.ErrorContains(t, err, "INTAKE_REQUEST_TIMEOUT")
	require.NotContains(t, err.Error(), "INTAKE_IDEMPOTENCY_WAIT",
		"a wait compared against an unparsable timeout is not a second mistake")
}

func TestLoadReportsEveryBadValue(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(
		"INTAKE_SMTP_TLS", "ssl",
		"INTAKE_SMTP_PORT", "0",
		"INTAKE_SHUTDOWN_TIMEOUT", "abc",
		"INTAKE_PUBLIC_URL", "ftp://x",
		"INTAKE_LOG_LEVEL", "verbose",
		"DATABASE_URL", "garbage",
	))
	require.Error(t, err)
	for _, name := range []string{
		"INTAKE_SMTP_TLS", "INTAKE_SMTP_PORT", "INTAKE_SHUTDOWN_TIMEOUT",
		"INTAKE_PUBLIC_URL", "INTAKE_LOG_LEVEL", "DATABASE_URL",
	} {
		require.Contains(t, err.Error(), name)
	}
	require.Len(t, strings.Split(err.Error(), "\n"), 6, "one line per bad variable:\n%v", err)
	// Non-secret values are quoted so the operator sees the typo.
	require.Contains(t, err.Error(), `"ssl"`)
	require.Contains(t, err.Error(), `"verbose"`)
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pa55"
	tests := []struct {
		name string
		env  []string
		bad  string
	}{
		{"database url with password, bad port", []string{"DATABASE_URL", "postgres://app:" + secret + "@h:notaport/db"}, "DATABASE_URL"},
		{"database url with password, bad sslmode", []string{"DATABASE_URL", "postgres://app:" + secret + "@h/db?sslmode=maybe"}, "DATABASE_URL"},
		{"database keyword/value with password", []string{"DATABASE_URL", "host=h password=" + secret + " sslmode=maybe"}, "DATABASE_URL"},
		{"smtp password without username", []string{"INTAKE_SMTP_PASSWORD", secret}, "INTAKE_SMTP_PASSWORD"},
		{"status secret too short", []string{"INTAKE_STATUS_SECRET", secret}, "INTAKE_STATUS_SECRET"},
		{"status secret not base64", []string{"INTAKE_STATUS_SECRET", secret + " " + secret + " " + secret + " " + secret}, "INTAKE_STATUS_SECRET"},
		{"previous status secret too short", []string{"INTAKE_STATUS_SECRET_PREVIOUS", secret}, "INTAKE_STATUS_SECRET_PREVIOUS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(tt.env...))
			require.ErrorContains(t, err, tt.bad)
			require.NotContains(t, err.Error(), secret)
		})
	}
}

// logConfig logs cfg the way the binaries do at start, through a JSON
// handler, and returns the output and its decoded "config" group.
func logConfig(t *testing.T, cfg config.Config) (string, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	var line struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line), buf.String())
	require.NotEmpty(t, line.Config, "config logged as a group: %s", buf.String())
	return buf.String(), line.Config
}

func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pa55"
	tests := []struct {
		name        string
		databaseURL string
	}{
		{"password in userinfo", "postgres://app:" + secret + "@db.internal:5432/intake?sslmode=require"},
		{"password in query", "postgres://app@db.internal:5432/intake?sslmode=require&password=" + secret},
		{"sslpassword in query", "postgres://app@db.internal:5432/intake?sslmode=require&sslpassword=" + secret},
		{"keyword/value", "host=db.internal user=app password=" + secret + " dbname=intake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(env(
				"DATABASE_URL", tt.databaseURL,
				"INTAKE_SMTP_USERNAME", "mailer",
				"INTAKE_SMTP_PASSWORD", secret+"-smtp",
				"INTAKE_STATUS_SECRET", statusSecret,
				"INTAKE_STATUS_SECRET_PREVIOUS", "hex:"+strings.Repeat("5a", 32),
			))
			require.NoError(t, err)
			out, group := logConfig(t, cfg)
			require.NotContains(t, out, secret)
			require.NotContains(t, out, strings.TrimPrefix(statusSecret, "hex:"))
			require.NotContains(t, out, "5a5a5a")
			require.Equal(t, "xxxxx", group["INTAKE_SMTP_PASSWORD"])
			require.Equal(t, "xxxxx", group["INTAKE_STATUS_SECRET"])
			require.Equal(t, "xxxxx", group["INTAKE_STATUS_SECRET_PREVIOUS"])
			require.Equal(t, "mailer", group["INTAKE_SMTP_USERNAME"], "the username is not a secret")
			if strings.HasPrefix(tt.databaseURL, "postgres://") {
				require.Contains(t, group["DATABASE_URL"], "db.internal", "the rest of the URL stays readable")
				require.Contains(t, group["DATABASE_URL"], "sslmode=require")
			}
		})
	}
}

func TestLogValueListsEveryVariable(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env())
	require.NoError(t, err)
	_, group := logConfig(t, cfg)
	for _, v := range config.Vars {
		require.Contains(t, group, v.Name, "%s is not printed at start", v.Name)
	}
	require.Len(t, group, len(config.Vars))
	require.Equal(t, specDefaults["DATABASE_URL"], group["DATABASE_URL"], "a URL without a password is printed as is")
	require.Equal(t, "", group["INTAKE_SMTP_PASSWORD"], "an unset password prints empty, not masked")
	require.Equal(t, "xxxxx", group["INTAKE_STATUS_SECRET"])
	require.Equal(t, "", group["INTAKE_STATUS_SECRET_PREVIOUS"], "no rotation under way")
	require.Equal(t, "info", strings.ToLower(group["INTAKE_LOG_LEVEL"].(string)))
}

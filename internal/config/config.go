// Package config reads Intake's configuration from environment variables.
// Only cmd/* calls it, passing os.Getenv, so nothing deeper reads the
// environment. Every bad value is reported with the variable's name.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/statustoken"
)

// Config is every setting of every Intake binary. Each binary uses what it
// needs; all of it is validated at start so a typo fails early everywhere.
type Config struct {
	DatabaseURL     string
	DBMaxConns      int32
	HTTPAddr        string
	PublicURL       *url.URL
	OpsAddr         string
	APIOpsAddr      string
	ShutdownTimeout time.Duration
	LogLevel        slog.Level

	// StatusTokens derive and check the tokens of status links
	// (INTAKE_STATUS_SECRET, INTAKE_STATUS_SECRET_PREVIOUS).
	StatusTokens statustoken.Keys

	// The public submit path.
	RequestTimeout  time.Duration
	IdempotencyWait time.Duration
	IdempotencyTTL  time.Duration
	MaxBodyBytes    int64
	MaxCVBytes      int64 // a multipart submit may be this much larger than MaxBodyBytes
	RateLimit       float64
	RateBurst       int
	TrustProxy      bool
	// AdminAuthFailures is how many failed admin authentications a client
	// address may make per minute (0: no limit).
	AdminAuthFailures int
	// SubmitConcurrency bounds the submits one API process works on at
	// once (INTAKE_SUBMIT_CONCURRENCY; 0 there means DBMaxConns, filled in
	// here). A submit beyond it waits up to SubmitWait for a turn, then is
	// answered 503 overloaded.
	SubmitConcurrency int
	SubmitWait        time.Duration
	// DBAcquireTimeout bounds how long an API transaction waits for a
	// free pool connection before it is answered 503 overloaded.
	DBAcquireTimeout time.Duration

	SMTPHost     string
	SMTPPort     int
	SMTPTLS      string
	SMTPUsername string
	SMTPPassword string
	MailFrom     *mail.Address

	Employer application.Employer

	AnalyticsSink string
	AnalyticsURL  *url.URL

	// The worker.
	EmailConcurrency     int
	AnalyticsConcurrency int
	FetchCooldown        time.Duration
	FetchPollInterval    time.Duration
	RelayPollInterval    time.Duration
	RelayBatch           int
	SMTPTimeout          time.Duration
	JobTimeout           time.Duration
	RescueAfter          time.Duration
	RecordTimeout        time.Duration
	HeartbeatInterval    time.Duration
	EmailLease           time.Duration
	WorkerDeadAfter      time.Duration
	RetryBase            time.Duration
	RetryMax             time.Duration
	RetryFor             time.Duration

	// The leader's periodic jobs.
	OutboxRetention   time.Duration
	ReconcileInterval time.Duration
	ReconcileAfter    time.Duration
	// ReportTo are the weekly report's recipients (empty: stored only);
	// ApplicationRetention how long applications are kept (zero: for ever).
	ReportTo             []string
	ApplicationRetention time.Duration
}

// Var describes one environment variable: its name, default and meaning.
// The README's configuration table lists the same variables.
type Var struct {
	Name    string
	Default string
	Secret  bool
	Help    string
}

// Vars lists every variable Intake reads, in the order they are documented.
var Vars = []Var{
	{Name: "DATABASE_URL", Default: "postgres://postgres@127.0.0.1:5432/intake?sslmode=disable", Secret: true, Help: "Postgres connection string"},
	{Name: "INTAKE_DB_MAX_CONNS", Default: "16", Help: "connection pool size per process (the worker takes at least its two concurrencies + 4)"},
	{Name: "INTAKE_HTTP_ADDR", Default: "127.0.0.1:8080", Help: "API listen address"},
	{Name: "INTAKE_PUBLIC_URL", Default: "http://127.0.0.1:8080", Help: "base URL of the status links in API answers and confirmation emails (set the same on the API and the worker)"},
	{Name: "INTAKE_STATUS_SECRET", Default: "", Secret: true, Help: "required: the key status-link tokens are derived from, at least 32 bytes as hex or base64 (see Status links)"},
	{Name: "INTAKE_STATUS_SECRET_PREVIOUS", Default: "", Secret: true, Help: "the secret before a rotation, optional: its links keep working while it is set; never used for new links"},
	{Name: "INTAKE_OPS_ADDR", Default: "127.0.0.1:8081", Help: "worker's ops listener (health, readiness, metrics)"},
	{Name: "INTAKE_API_OPS_ADDR", Default: "127.0.0.1:8082", Help: "the API's ops listener (health, readiness, metrics; never the public address)"},
	{Name: "INTAKE_SHUTDOWN_TIMEOUT", Default: "30s", Help: "graceful shutdown budget"},
	{Name: "INTAKE_LOG_LEVEL", Default: "info", Help: "debug, info, warn or error"},
	{Name: "INTAKE_REQUEST_TIMEOUT", Default: "10s", Help: "deadline for each API request, database work included"},
	{Name: "INTAKE_IDEMPOTENCY_WAIT", Default: "3s", Help: "how long a request waits for another one holding the same Idempotency-Key before answering 409"},
	{Name: "INTAKE_IDEMPOTENCY_TTL", Default: "48h", Help: "how long idempotency keys are kept (at least 24h)"},
	{Name: "INTAKE_MAX_BODY_BYTES", Default: "65536", Help: "largest accepted request body; a submit may be 420000 bytes larger, for the longest answers its questions allow"},
	{Name: "INTAKE_MAX_CV_BYTES", Default: "5242880", Help: "largest accepted CV file (1024 to 52428800)"},
	{Name: "INTAKE_RATE_LIMIT", Default: "5", Help: "public submits per second per client address (0 disables)"},
	{Name: "INTAKE_RATE_BURST", Default: "20", Help: "burst allowed above INTAKE_RATE_LIMIT"},
	{Name: "INTAKE_ADMIN_AUTH_FAILURES", Default: "10", Help: "failed admin API authentications per minute per client address (0 disables the limit)"},
	{Name: "INTAKE_SUBMIT_CONCURRENCY", Default: "0", Help: "submits one API process works on at once (0: INTAKE_DB_MAX_CONNS; at most INTAKE_DB_MAX_CONNS)"},
	{Name: "INTAKE_SUBMIT_WAIT", Default: "100ms", Help: "how long a submit beyond INTAKE_SUBMIT_CONCURRENCY waits for a turn before 503 overloaded (0: none)"},
	{Name: "INTAKE_DB_ACQUIRE_TIMEOUT", Default: "500ms", Help: "how long an API transaction waits for a free database connection before 503 overloaded"},
	{Name: "INTAKE_TRUST_PROXY", Default: "false", Help: "take the client address from X-Forwarded-For (only behind a proxy that sets it)"},
	{Name: "INTAKE_SMTP_HOST", Default: "127.0.0.1", Help: "SMTP server host"},
	{Name: "INTAKE_SMTP_PORT", Default: "1025", Help: "SMTP server port"},
	{Name: "INTAKE_SMTP_TLS", Default: "starttls", Help: "none, starttls or tls"},
	{Name: "INTAKE_SMTP_USERNAME", Default: "", Help: "SMTP auth user, optional"},
	{Name: "INTAKE_SMTP_PASSWORD", Default: "", Secret: true, Help: "SMTP auth password, optional"},
	{Name: "INTAKE_MAIL_FROM", Default: "Intake <no-reply@intake.localhost>", Help: "sender address"},
	{Name: "INTAKE_ORG_NAME", Default: "Intake", Help: "the employer's name: in the site's header and titles and in the emails' signature"},
	{Name: "INTAKE_ORG_LOGO_URL", Default: "", Help: "absolute http(s) URL of the employer's logo for the site's header, optional"},
	{Name: "INTAKE_ORG_CONTACT", Default: "", Help: "an email address applicants may write to, shown on the site and in the emails, optional"},
	{Name: "INTAKE_ANALYTICS_SINK", Default: "postgres", Help: "postgres or http"},
	{Name: "INTAKE_ANALYTICS_URL", Default: "", Help: "endpoint for the http sink"},
	{Name: "INTAKE_EMAIL_CONCURRENCY", Default: "20", Help: "confirmation emails sent at once per worker"},
	{Name: "INTAKE_ANALYTICS_CONCURRENCY", Default: "20", Help: "analytics records sent at once per worker (own queue, so a sink outage never delays email)"},
	{Name: "INTAKE_FETCH_COOLDOWN", Default: "10ms", Help: "least time between two job fetches of one queue (River's default, 100ms, caps a queue at 10 fetches/s)"},
	{Name: "INTAKE_FETCH_POLL_INTERVAL", Default: "2s", Help: "how often a queue looks for jobs when no insert notification arrived (a fallback: every relay round notifies)"},
	{Name: "INTAKE_RELAY_POLL_INTERVAL", Default: "2s", Help: "how often the relay looks for events when no notification woke it (a fallback: every submit notifies)"},
	{Name: "INTAKE_RELAY_BATCH", Default: "500", Help: "events the relay dispatches per transaction"},
	{Name: "INTAKE_SMTP_TIMEOUT", Default: "10s", Help: "timeout for the SMTP dial and for each SMTP command's reply; the whole send ends with its job's INTAKE_JOB_TIMEOUT"},
	{Name: "INTAKE_JOB_TIMEOUT", Default: "30s", Help: "longest a job may run before it is cancelled and retried; bounds every email send"},
	{Name: "INTAKE_RECORD_TIMEOUT", Default: "20s", Help: "time kept after a send to record its outcome (through a database outage); an email attempt's lease is INTAKE_JOB_TIMEOUT + this"},
	{Name: "INTAKE_RESCUE_AFTER", Default: "1m", Help: "backstop: a job still running after this long is run again by any worker, heartbeat or not; must exceed INTAKE_JOB_TIMEOUT + INTAKE_RECORD_TIMEOUT"},
	{Name: "INTAKE_HEARTBEAT_INTERVAL", Default: "2s", Help: "how often each worker records its heartbeat (one commit), renews its email leases and rescues dead workers' jobs"},
	{Name: "INTAKE_EMAIL_LEASE", Default: "5s", Help: "an email attempt's delivery lease, renewed by every heartbeat; a worker whose heartbeat stops cuts its sends before it ends; at least 2 × INTAKE_HEARTBEAT_INTERVAL"},
	{Name: "INTAKE_WORKER_DEAD_AFTER", Default: "7s", Help: "a worker whose heartbeat is older than this is dead: its running jobs run again at once; at least INTAKE_EMAIL_LEASE + INTAKE_HEARTBEAT_INTERVAL"},
	{Name: "INTAKE_RETRY_BASE", Default: "10s", Help: "first retry delay; doubles per attempt"},
	{Name: "INTAKE_RETRY_MAX", Default: "30m", Help: "longest delay between retries"},
	{Name: "INTAKE_RETRY_FOR", Default: "72h", Help: "how long a failing email or analytics job keeps being retried before it is given up"},
	{Name: "INTAKE_OUTBOX_RETENTION", Default: "168h", Help: "dispatched outbox events older than this are deleted (hourly, in batches); at least 1h"},
	{Name: "INTAKE_RECONCILE_INTERVAL", Default: "1m", Help: "how often the leader's reconciler looks for confirmations that lost their job"},
	{Name: "INTAKE_RECONCILE_AFTER", Default: "5m", Help: "a delivery left alone this long with no job is re-enqueued once; an event undispatched this long is reported"},
	{Name: "INTAKE_REPORT_TO", Default: "", Help: "comma-separated addresses the weekly report is emailed to; empty: the report is stored, not emailed"},
	{Name: "INTAKE_APPLICATION_RETENTION", Default: "", Help: "applications received longer ago than this are erased (hourly, in batches); at least 24h; empty or 0: kept for ever"},
}

// Load reads and validates every variable. The error names each bad
// variable and what was wrong with it.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	var c Config

	c.DatabaseURL = r.str("DATABASE_URL")
	if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
		r.fail("DATABASE_URL", "is not a valid Postgres connection string")
	}
	c.DBMaxConns = int32(r.intIn("INTAKE_DB_MAX_CONNS", 1, 1000))
	c.HTTPAddr = r.addr("INTAKE_HTTP_ADDR")
	c.PublicURL = r.httpURL("INTAKE_PUBLIC_URL", true)
	c.StatusTokens = r.statusKeys("INTAKE_STATUS_SECRET", "INTAKE_STATUS_SECRET_PREVIOUS")
	c.OpsAddr = r.addr("INTAKE_OPS_ADDR")
	c.APIOpsAddr = r.addr("INTAKE_API_OPS_ADDR")
	c.ShutdownTimeout = r.duration("INTAKE_SHUTDOWN_TIMEOUT", time.Second, time.Hour)
	c.LogLevel = r.logLevel("INTAKE_LOG_LEVEL")

	c.RequestTimeout = r.duration("INTAKE_REQUEST_TIMEOUT", 100*time.Millisecond, 5*time.Minute)
	c.IdempotencyWait = r.duration("INTAKE_IDEMPOTENCY_WAIT", 10*time.Millisecond, time.Minute)
	if c.IdempotencyWait >= c.RequestTimeout && r.ok("INTAKE_IDEMPOTENCY_WAIT", "INTAKE_REQUEST_TIMEOUT") {
		r.fail("INTAKE_IDEMPOTENCY_WAIT", "must be shorter than INTAKE_REQUEST_TIMEOUT")
	}
	c.IdempotencyTTL = r.duration("INTAKE_IDEMPOTENCY_TTL", application.MinIdempotencyKeyTTL, 365*24*time.Hour)
	c.MaxBodyBytes = int64(r.intIn("INTAKE_MAX_BODY_BYTES", 1024, 10<<20))
	c.MaxCVBytes = int64(r.intIn("INTAKE_MAX_CV_BYTES", 1024, 50<<20))
	c.RateLimit = r.float("INTAKE_RATE_LIMIT", 0, 1e6)
	c.RateBurst = r.intIn("INTAKE_RATE_BURST", 1, 1e6)
	c.TrustProxy = r.boolean("INTAKE_TRUST_PROXY")
	c.AdminAuthFailures = r.intIn("INTAKE_ADMIN_AUTH_FAILURES", 0, 1e6)
	c.SubmitConcurrency = r.intIn("INTAKE_SUBMIT_CONCURRENCY", 0, 1000)
	if c.SubmitConcurrency > int(c.DBMaxConns) && r.ok("INTAKE_SUBMIT_CONCURRENCY", "INTAKE_DB_MAX_CONNS") {
		// More submits at once than connections would only queue on the pool.
		r.fail("INTAKE_SUBMIT_CONCURRENCY", "must not exceed INTAKE_DB_MAX_CONNS")
	}
	if c.SubmitConcurrency == 0 {
		c.SubmitConcurrency = int(c.DBMaxConns)
	}
	c.SubmitWait = r.duration("INTAKE_SUBMIT_WAIT", 0, time.Minute)
	if c.SubmitWait >= c.RequestTimeout && r.ok("INTAKE_SUBMIT_WAIT", "INTAKE_REQUEST_TIMEOUT") {
		r.fail("INTAKE_SUBMIT_WAIT", "must be shorter than INTAKE_REQUEST_TIMEOUT")
	}
	c.DBAcquireTimeout = r.duration("INTAKE_DB_ACQUIRE_TIMEOUT", time.Millisecond, time.Minute)
	if c.DBAcquireTimeout >= c.RequestTimeout && r.ok("INTAKE_DB_ACQUIRE_TIMEOUT", "INTAKE_REQUEST_TIMEOUT") {
		r.fail("INTAKE_DB_ACQUIRE_TIMEOUT", "must be shorter than INTAKE_REQUEST_TIMEOUT")
	}

	c.SMTPHost = r.str("INTAKE_SMTP_HOST")
	if c.SMTPHost == "" {
		r.fail("INTAKE_SMTP_HOST", "must not be empty")
	}
	c.SMTPPort = r.intIn("INTAKE_SMTP_PORT", 1, 65535)
	c.SMTPTLS = r.oneOf("INTAKE_SMTP_TLS", "none", "starttls", "tls")
	c.SMTPUsername = r.str("INTAKE_SMTP_USERNAME")
	c.SMTPPassword = r.str("INTAKE_SMTP_PASSWORD")
	if (c.SMTPUsername == "") != (c.SMTPPassword == "") {
		r.fail("INTAKE_SMTP_PASSWORD", "INTAKE_SMTP_USERNAME and INTAKE_SMTP_PASSWORD must be set together")
	}
	if from, err := mail.ParseAddress(r.str("INTAKE_MAIL_FROM")); err != nil {
		r.fail("INTAKE_MAIL_FROM", "must be an address like \"Intake <no-reply@example.com>\"")
	} else {
		c.MailFrom = from
	}

	c.Employer.Name = strings.TrimSpace(r.str("INTAKE_ORG_NAME"))
	if n := len([]rune(c.Employer.Name)); n == 0 || n > 100 {
		r.fail("INTAKE_ORG_NAME", "must be 1 to 100 characters")
	}
	if u := r.httpURL("INTAKE_ORG_LOGO_URL", false); u != nil {
		c.Employer.LogoURL = u.String()
	}
	if contact := r.str("INTAKE_ORG_CONTACT"); contact != "" {
		if a, err := mail.ParseAddress(contact); err != nil || a.Name != "" || a.Address != contact {
			r.fail("INTAKE_ORG_CONTACT", "must be a bare email address like jobs@example.com")
		} else {
			c.Employer.Contact = contact
		}
	}

	c.AnalyticsSink = r.oneOf("INTAKE_ANALYTICS_SINK", "postgres", "http")
	c.AnalyticsURL = r.httpURL("INTAKE_ANALYTICS_URL", c.AnalyticsSink == "http")

	c.EmailConcurrency = r.intIn("INTAKE_EMAIL_CONCURRENCY", 1, 10000)
	c.AnalyticsConcurrency = r.intIn("INTAKE_ANALYTICS_CONCURRENCY", 1, 10000)
	c.FetchCooldown = r.duration("INTAKE_FETCH_COOLDOWN", time.Millisecond, 10*time.Second)
	c.FetchPollInterval = r.duration("INTAKE_FETCH_POLL_INTERVAL", time.Millisecond, time.Minute)
	if c.FetchPollInterval < c.FetchCooldown && r.ok("INTAKE_FETCH_COOLDOWN", "INTAKE_FETCH_POLL_INTERVAL") {
		r.fail("INTAKE_FETCH_POLL_INTERVAL", "must not be shorter than INTAKE_FETCH_COOLDOWN")
	}
	c.RelayPollInterval = r.duration("INTAKE_RELAY_POLL_INTERVAL", 10*time.Millisecond, time.Minute)
	c.RelayBatch = r.intIn("INTAKE_RELAY_BATCH", 1, 10000)
	c.SMTPTimeout = r.duration("INTAKE_SMTP_TIMEOUT", 100*time.Millisecond, 5*time.Minute)
	c.JobTimeout = r.duration("INTAKE_JOB_TIMEOUT", time.Second, time.Hour)
	c.RecordTimeout = r.duration("INTAKE_RECORD_TIMEOUT", time.Second, time.Hour)
	c.RescueAfter = r.duration("INTAKE_RESCUE_AFTER", 2*time.Second, 24*time.Hour)
	if c.SMTPTimeout >= c.JobTimeout && r.ok("INTAKE_SMTP_TIMEOUT", "INTAKE_JOB_TIMEOUT") {
		r.fail("INTAKE_SMTP_TIMEOUT", "must be shorter than INTAKE_JOB_TIMEOUT")
	}
	// River's rescuer is the backstop and knows nothing of heartbeats: it
	// runs again any job running longer than INTAKE_RESCUE_AFTER, its
	// worker alive or not. So an attempt (its send, bounded by the job's
	// timeout, then the record of its outcome) must be over by then, or a
	// live worker's analytics job would run twice at once and an email
	// attempt still recording would meet its own rescue. The delivery's
	// lease fences the rest.
	if c.RescueAfter <= c.JobTimeout+c.RecordTimeout && r.ok("INTAKE_RESCUE_AFTER", "INTAKE_JOB_TIMEOUT", "INTAKE_RECORD_TIMEOUT") {
		r.fail("INTAKE_RESCUE_AFTER", fmt.Sprintf("must be longer than INTAKE_JOB_TIMEOUT + INTAKE_RECORD_TIMEOUT (%s + %s), so an email attempt and the record of its outcome end before its job can be rescued",
			c.JobTimeout, c.RecordTimeout))
	}
	// The heartbeat rescue's rules (see job.Heartbeat): a lease spans at
	// least two beats, so one slow beat never cuts a send; and a worker is
	// called dead only a beat after its leases ended, so the rescued run
	// finds them over and never overlaps a send of a worker that is alive
	// but cannot reach the database, and a live worker whose beats failed
	// twice is not yet dead if its third gets through. A killed worker's
	// jobs run again within about INTAKE_WORKER_DEAD_AFTER +
	// INTAKE_HEARTBEAT_INTERVAL.
	c.HeartbeatInterval = r.duration("INTAKE_HEARTBEAT_INTERVAL", 100*time.Millisecond, time.Minute)
	c.EmailLease = r.duration("INTAKE_EMAIL_LEASE", 200*time.Millisecond, time.Hour)
	c.WorkerDeadAfter = r.duration("INTAKE_WORKER_DEAD_AFTER", 300*time.Millisecond, time.Hour)
	if c.EmailLease < 2*c.HeartbeatInterval && r.ok("INTAKE_EMAIL_LEASE", "INTAKE_HEARTBEAT_INTERVAL") {
		r.fail("INTAKE_EMAIL_LEASE", fmt.Sprintf("must be at least 2 × INTAKE_HEARTBEAT_INTERVAL (%s), so one slow heartbeat does not cut a send", 2*c.HeartbeatInterval))
	}
	if c.WorkerDeadAfter < c.EmailLease+c.HeartbeatInterval && r.ok("INTAKE_WORKER_DEAD_AFTER", "INTAKE_EMAIL_LEASE", "INTAKE_HEARTBEAT_INTERVAL") {
		r.fail("INTAKE_WORKER_DEAD_AFTER", fmt.Sprintf("must be at least INTAKE_EMAIL_LEASE + INTAKE_HEARTBEAT_INTERVAL (%s), so a silent worker's leases end before its jobs run again and two failed beats do not make a live worker dead", c.EmailLease+c.HeartbeatInterval))
	}
	c.RetryBase = r.duration("INTAKE_RETRY_BASE", time.Millisecond, time.Hour)
	c.RetryMax = r.duration("INTAKE_RETRY_MAX", time.Millisecond, 24*time.Hour)
	if c.RetryMax < c.RetryBase && r.ok("INTAKE_RETRY_BASE", "INTAKE_RETRY_MAX") {
		r.fail("INTAKE_RETRY_MAX", "must not be shorter than INTAKE_RETRY_BASE")
	}
	c.RetryFor = r.duration("INTAKE_RETRY_FOR", time.Second, 365*24*time.Hour)

	c.OutboxRetention = r.duration("INTAKE_OUTBOX_RETENTION", time.Hour, 10*365*24*time.Hour)
	c.ReconcileInterval = r.duration("INTAKE_RECONCILE_INTERVAL", time.Second, time.Hour)
	c.ReconcileAfter = r.duration("INTAKE_RECONCILE_AFTER", time.Second, 24*time.Hour)
	c.ReportTo = r.addressList("INTAKE_REPORT_TO")
	if v := r.str("INTAKE_APPLICATION_RETENTION"); v != "" && v != "0" {
		c.ApplicationRetention = r.duration("INTAKE_APPLICATION_RETENTION", 24*time.Hour, 100*365*24*time.Hour)
	}

	return c, r.err()
}

// LogValue prints the configuration with secrets masked, so it can be logged
// at start.
func (c Config) LogValue() slog.Value {
	analyticsURL := ""
	if c.AnalyticsURL != nil {
		analyticsURL = c.AnalyticsURL.Redacted()
	}
	previousSecret := ""
	if c.StatusTokens.Rotating() {
		previousSecret = "xxxxx"
	}
	return slog.GroupValue(
		slog.String("DATABASE_URL", redactDatabaseURL(c.DatabaseURL)),
		slog.Int("INTAKE_DB_MAX_CONNS", int(c.DBMaxConns)),
		slog.Int("INTAKE_SUBMIT_CONCURRENCY", c.SubmitConcurrency),
		slog.String("INTAKE_SUBMIT_WAIT", c.SubmitWait.String()),
		slog.String("INTAKE_DB_ACQUIRE_TIMEOUT", c.DBAcquireTimeout.String()),
		slog.String("INTAKE_HTTP_ADDR", c.HTTPAddr),
		slog.String("INTAKE_PUBLIC_URL", c.PublicURL.String()),
		slog.String("INTAKE_STATUS_SECRET", "xxxxx"), // required, so always set
		slog.String("INTAKE_STATUS_SECRET_PREVIOUS", previousSecret),
		slog.String("INTAKE_OPS_ADDR", c.OpsAddr),
		slog.String("INTAKE_API_OPS_ADDR", c.APIOpsAddr),
		slog.String("INTAKE_SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String()),
		slog.String("INTAKE_LOG_LEVEL", c.LogLevel.String()),
		slog.String("INTAKE_REQUEST_TIMEOUT", c.RequestTimeout.String()),
		slog.String("INTAKE_IDEMPOTENCY_WAIT", c.IdempotencyWait.String()),
		slog.String("INTAKE_IDEMPOTENCY_TTL", c.IdempotencyTTL.String()),
		slog.Int64("INTAKE_MAX_BODY_BYTES", c.MaxBodyBytes),
		slog.Int64("INTAKE_MAX_CV_BYTES", c.MaxCVBytes),
		slog.Float64("INTAKE_RATE_LIMIT", c.RateLimit),
		slog.Int("INTAKE_RATE_BURST", c.RateBurst),
		slog.Bool("INTAKE_TRUST_PROXY", c.TrustProxy),
		slog.Int("INTAKE_ADMIN_AUTH_FAILURES", c.AdminAuthFailures),
		slog.String("INTAKE_SMTP_HOST", c.SMTPHost),
		slog.Int("INTAKE_SMTP_PORT", c.SMTPPort),
		slog.String("INTAKE_SMTP_TLS", c.SMTPTLS),
		slog.String("INTAKE_SMTP_USERNAME", c.SMTPUsername),
		slog.String("INTAKE_SMTP_PASSWORD", mask(c.SMTPPassword)),
		slog.String("INTAKE_MAIL_FROM", c.MailFrom.String()),
		slog.String("INTAKE_ORG_NAME", c.Employer.Name),
		slog.String("INTAKE_ORG_LOGO_URL", c.Employer.LogoURL),
		slog.String("INTAKE_ORG_CONTACT", c.Employer.Contact),
		slog.String("INTAKE_ANALYTICS_SINK", c.AnalyticsSink),
		slog.String("INTAKE_ANALYTICS_URL", analyticsURL),
		slog.Int("INTAKE_EMAIL_CONCURRENCY", c.EmailConcurrency),
		slog.Int("INTAKE_ANALYTICS_CONCURRENCY", c.AnalyticsConcurrency),
		slog.String("INTAKE_FETCH_COOLDOWN", c.FetchCooldown.String()),
		slog.String("INTAKE_FETCH_POLL_INTERVAL", c.FetchPollInterval.String()),
		slog.String("INTAKE_RELAY_POLL_INTERVAL", c.RelayPollInterval.String()),
		slog.Int("INTAKE_RELAY_BATCH", c.RelayBatch),
		slog.String("INTAKE_SMTP_TIMEOUT", c.SMTPTimeout.String()),
		slog.String("INTAKE_JOB_TIMEOUT", c.JobTimeout.String()),
		slog.String("INTAKE_RECORD_TIMEOUT", c.RecordTimeout.String()),
		slog.String("INTAKE_RESCUE_AFTER", c.RescueAfter.String()),
		slog.String("INTAKE_HEARTBEAT_INTERVAL", c.HeartbeatInterval.String()),
		slog.String("INTAKE_EMAIL_LEASE", c.EmailLease.String()),
		slog.String("INTAKE_WORKER_DEAD_AFTER", c.WorkerDeadAfter.String()),
		slog.String("INTAKE_RETRY_BASE", c.RetryBase.String()),
		slog.String("INTAKE_RETRY_MAX", c.RetryMax.String()),
		slog.String("INTAKE_RETRY_FOR", c.RetryFor.String()),
		slog.String("INTAKE_OUTBOX_RETENTION", c.OutboxRetention.String()),
		slog.String("INTAKE_RECONCILE_INTERVAL", c.ReconcileInterval.String()),
		slog.String("INTAKE_RECONCILE_AFTER", c.ReconcileAfter.String()),
		slog.String("INTAKE_REPORT_TO", strings.Join(c.ReportTo, ",")),
		slog.String("INTAKE_APPLICATION_RETENTION", c.ApplicationRetention.String()),
	)
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "xxxxx"
}

// redactDatabaseURL hides the password of a URL-form connection string (in
// the userinfo or, as pgx also accepts, in a password or sslpassword query
// parameter); keyword/value strings are hidden whole when they carry a
// password.
func redactDatabaseURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if q := u.Query(); strings.Contains(u.RawQuery, "password") {
			for k := range q {
				if strings.Contains(k, "password") {
					q.Set(k, "xxxxx")
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(s, "password") {
		return "xxxxx"
	}
	return s
}

// reader collects one error per bad variable instead of stopping at the first.
type reader struct {
	getenv func(string) string
	errs   []error
	bad    map[string]bool
}

func (r *reader) str(name string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return defaultOf(name)
}

func (r *reader) fail(name, msg string) {
	if r.bad == nil {
		r.bad = map[string]bool{}
	}
	r.bad[name] = true
	r.errs = append(r.errs, fmt.Errorf("%s %s (got %q)", name, msg, r.shown(name)))
}

// shown is the value to quote in an error: secrets are never echoed
// (an unset one shows empty).
func (r *reader) shown(name string) string {
	for _, v := range Vars {
		if v.Name == name && v.Secret {
			return mask(r.str(name))
		}
	}
	return r.str(name)
}

func (r *reader) ok(names ...string) bool {
	for _, n := range names {
		if r.bad[n] {
			return false
		}
	}
	return true
}

func (r *reader) err() error { return errors.Join(r.errs...) }

func (r *reader) intIn(name string, lo, hi int) int {
	n, err := strconv.Atoi(r.str(name))
	if err != nil || n < lo || n > hi {
		r.fail(name, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
	}
	return n
}

func (r *reader) float(name string, lo, hi float64) float64 {
	f, err := strconv.ParseFloat(r.str(name), 64)
	if err != nil || f < lo || f > hi {
		r.fail(name, fmt.Sprintf("must be a number from %g to %g", lo, hi))
	}
	return f
}

func (r *reader) boolean(name string) bool {
	b, err := strconv.ParseBool(r.str(name))
	if err != nil {
		r.fail(name, "must be true or false")
	}
	return b
}

func (r *reader) duration(name string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(r.str(name))
	if err != nil || d < lo || d > hi {
		r.fail(name, fmt.Sprintf("must be a duration from %s to %s, like 30s or 5m", lo, hi))
	}
	return d
}

// addressList reads comma-separated bare addresses (ops@example.com);
// empty is none.
func (r *reader) addressList(name string) []string {
	v := strings.TrimSpace(r.str(name))
	if v == "" {
		return nil
	}
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if a, err := mail.ParseAddress(part); err != nil || a.Name != "" || a.Address != part {
			r.fail(name, "must be comma-separated bare email addresses like ops@example.com,lead@example.com")
			return nil
		}
		out = append(out, part)
	}
	return out
}

func (r *reader) oneOf(name string, allowed ...string) string {
	v := r.str(name)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, "must be one of "+strings.Join(allowed, ", "))
	return v
}

func (r *reader) addr(name string) string {
	v := r.str(name)
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		r.fail(name, "must be host:port, like 127.0.0.1:8080")
		return v
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.fail(name, "must have a port from 0 to 65535")
	}
	return v
}

func (r *reader) httpURL(name string, required bool) *url.URL {
	v := r.str(name)
	if v == "" && !required {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail(name, "must be an absolute http or https URL")
		return &url.URL{}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u
}

// statusKeys reads the status-token secret, which is required, and the
// previous one, which is set only while the secret is rotated.
func (r *reader) statusKeys(name, previousName string) statustoken.Keys {
	current := r.secret(name, true)
	previous := r.secret(previousName, false)
	if current == nil || !r.ok(previousName) {
		return statustoken.Keys{}
	}
	keys, err := statustoken.NewKeys(current, previous)
	if err != nil { // ParseSecret already refused short secrets
		r.fail(name, err.Error())
	}
	return keys
}

func (r *reader) secret(name string, required bool) []byte {
	v := r.str(name)
	if v == "" {
		if required {
			r.fail(name, "is required: at least 32 random bytes as hex or base64, the same for the API and every worker (make one with `openssl rand -hex 32`)")
		}
		return nil
	}
	b, err := statustoken.ParseSecret(v)
	if err != nil {
		r.fail(name, err.Error())
	}
	return b
}

func (r *reader) logLevel(name string) slog.Level {
	var l slog.Level
	v := r.oneOf(name, "debug", "info", "warn", "error")
	_ = l.UnmarshalText([]byte(v))
	return l
}

func defaultOf(name string) string {
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}

package testkit

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/httpapi"
	"github.com/intake/intake/internal/logging"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
)

// API is an intake-api handler served over real HTTP on a loopback port,
// wired exactly like cmd/intake-api, over its own database.
type API struct {
	URL    string
	DBURL  string
	Pool   *pgxpool.Pool // an extra pool on the same database, for assertions
	Store  *postgres.Store
	Config config.Config
	Logs   *Buffer // everything the server logged
	// Registry holds the server's metrics (httpapi.NewMetrics).
	Registry *prometheus.Registry
}

// APIOpts adjusts StartAPI.
type APIOpts struct {
	// DBURL is the database to use; a fresh migrated one when empty.
	DBURL string
	// Configure edits the configuration after the defaults are loaded.
	// Rate limiting (submits and failed admin authentications) starts
	// disabled; a test that wants it sets it here.
	Configure func(*config.Config)
	// InjectsFaults says the test breaks the server on purpose (a failing
	// trigger), so a 500 is what it expects; any other test fails on one.
	InjectsFaults bool
}

// serverError finds an access log line with a 5xx other than 503.
var serverError = regexp.MustCompile(`"status":5(0[0-24-9]|[1-9][0-9])\b`)

// StatusSecret is the INTAKE_STATUS_SECRET of every API and worker a test
// starts, in process or as a process, so a link one of them makes opens on
// another. It is public: never use it outside tests.
const StatusSecret = "hex:696e74616b65207465737420737461747573207365637265743a207465737473206f6e6c7921"

// DefaultConfig is the configuration every binary gets with no environment
// but the one required variable, INTAKE_STATUS_SECRET (StatusSecret).
func DefaultConfig(tb testing.TB) config.Config {
	tb.Helper()
	cfg, err := config.Load(func(name string) string {
		if name == "INTAKE_STATUS_SECRET" {
			return StatusSecret
		}
		return ""
	})
	if err != nil {
		tb.Fatalf("default config: %v", err)
	}
	return cfg
}

// StartAPI starts the API and stops it when the test ends.
func StartAPI(tb testing.TB, opts *APIOpts) *API {
	tb.Helper()
	if opts == nil {
		opts = &APIOpts{}
	}
	dbURL := opts.DBURL
	if dbURL == "" {
		dbURL = NewDB(tb)
	}
	cfg := DefaultConfig(tb)
	cfg.DatabaseURL = dbURL
	cfg.RateLimit = 0
	cfg.AdminAuthFailures = 0
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}

	logs := &Buffer{}
	logger := logging.New(logs, slog.LevelDebug, "intake-api")
	ctx := context.Background()
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, &postgres.PoolOpts{
		MaxConns:    cfg.DBMaxConns,
		LockTimeout: cfg.IdempotencyWait,
	})
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	migrator, err := migrate.New(pool, logger)
	if err != nil {
		tb.Fatalf("migrator: %v", err)
	}
	store := postgres.NewStore(pool).WithAcquireTimeout(cfg.DBAcquireTimeout)
	waker := postgres.NewWaker(pool, logger, 5*time.Millisecond)
	wakerCtx, stopWaker := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { waker.Run(wakerCtx) })

	registry := prometheus.NewRegistry()
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Deps{
		Config:  cfg,
		Store:   store,
		Waker:   waker,
		Ready:   migrator.Ready,
		Logger:  logger,
		Metrics: httpapi.NewMetrics(registry),
	}))

	assertPool, err := postgres.NewPool(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	tb.Cleanup(func() {
		// No request in any test may make a 5xx the contract does not
		// name (503: the database is unavailable).
		if m := serverError.FindString(logs.String()); m != "" && !opts.InjectsFaults {
			tb.Errorf("the API answered a 5xx the contract does not name (%s); logs:\n%s", m, logs)
		}
		srv.Close()
		stopWaker()
		wg.Wait()
		_ = migrator.Close()
		pool.Close()
		assertPool.Close()
	})
	return &API{URL: srv.URL, DBURL: cfg.DatabaseURL, Pool: assertPool, Store: store, Config: cfg, Logs: logs, Registry: registry}
}

// Metrics is the server's metrics in Prometheus's text format, as its ops
// listener serves them.
func (a *API) Metrics(tb testing.TB) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// Response is an HTTP response with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends one request to the API. headers alternate name, value.
func (a *API) Do(tb testing.TB, method, path, body string, headers ...string) Response {
	tb.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Submit posts body as JSON to the posting's applications with key.
func (a *API) Submit(tb testing.TB, slug, key, body string) Response {
	tb.Helper()
	return a.Do(tb, http.MethodPost, "/api/v1/jobs/"+slug+"/applications", body,
		"Content-Type", "application/json", "Idempotency-Key", key)
}

// CreatePosting adds an open posting and returns its slug.
func (a *API) CreatePosting(tb testing.TB, slug string) string {
	tb.Helper()
	_, err := a.Store.CreatePosting(context.Background(), application.NewPosting{Slug: slug, Title: "Posting " + slug})
	if err != nil {
		tb.Fatalf("create posting: %v", err)
	}
	return slug
}

// Count returns SELECT count(*) FROM table (a table name from the test, never input).
func (a *API) Count(tb testing.TB, table string) int {
	tb.Helper()
	var n int
	if err := a.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return n
}

// Buffer is a bytes.Buffer safe for the concurrent writes of a logger.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
)

// benchSlug is the posting every application of the run goes to.
const benchSlug = "bench"

// createDatabase creates intake_bench_<random> on the server serverURL
// points at and returns its name and URL.
func createDatabase(ctx context.Context, serverURL string) (name, dbURL string, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", "", fmt.Errorf("--database-url: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "intake_bench_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

// dropDatabase drops the bench database, disconnecting whoever is left.
func dropDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// prepareDatabase applies the migrations intakectl migrate applies and
// creates the posting.
func prepareDatabase(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := migrate.New(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(ctx); err != nil {
		return err
	}
	_, err = postgres.NewStore(pool).CreatePosting(ctx, application.NewPosting{Slug: benchSlug, Title: "Benchmark"})
	return err
}

// resetTables empties everything a phase writes, so each phase starts from
// the same empty state (the posting stays).
func resetTables(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `TRUNCATE applications, application_files, outbox_events, idempotency_keys, deliveries,
		analytics_events, river_job, worker_heartbeats`)
	return err
}

// seedBacklog inserts n applications with their undispatched
// application.submitted events, the way the submit path leaves them, in
// statements of at most 25,000 rows, then (with analyze) refreshes the
// planner's statistics. tag keeps emails unique across calls.
// (The same SQL as the test helper testkit.Seed, which the harness may not
// import.)
func seedBacklog(ctx context.Context, pool *pgxpool.Pool, tag string, n int, analyze bool) error {
	const chunk = 25_000
	for lo := 1; lo <= n; lo += chunk {
		hi := min(lo+chunk-1, n)
		_, err := pool.Exec(ctx, `
			WITH p AS (SELECT id FROM postings WHERE slug = $1),
			apps AS (
				INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
				SELECT gen_random_uuid(), p.id, 'Applicant ' || g, $2 || g || '@example.com',
				       $2 || g || '@example.com', now()
				FROM p, generate_series($3::int, $4::int) AS g
				RETURNING id
			)
			INSERT INTO outbox_events (id, kind, aggregate_id, payload)
			SELECT gen_random_uuid(), 'application.submitted', apps.id,
			       jsonb_build_object('application_id', apps.id, 'posting_slug', $1::text)
			FROM apps`, benchSlug, "seed-"+tag+"-", lo, hi)
		if err != nil {
			return fmt.Errorf("seed applications %d to %d: %w", lo, hi, err)
		}
	}
	if !analyze {
		return nil
	}
	_, err := pool.Exec(ctx, "ANALYZE applications, outbox_events")
	return err
}

// growDatabase bulk-loads n applications as weeks of traffic would leave
// them: time-ordered ids, a dispatched event, a completed idempotency key
// and a sent delivery each, in transactions of 100,000. Triggers (the
// foreign keys and the commit-time invariant checks) are skipped when the
// role may (session_replication_role); the rows satisfy them by
// construction.
func growDatabase(ctx context.Context, pool *pgxpool.Pool, n int) error {
	const chunk = 100_000
	for lo := 1; lo <= n; lo += chunk {
		hi := min(lo+chunk-1, n)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SAVEPOINT role"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
				if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT role"); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `
				WITH p AS (SELECT id FROM postings WHERE slug = $1),
				g AS (
					SELECT g, md5(g::text) AS h,
					       now() - interval '1 hour' - ($3::bigint - g) * interval '150 milliseconds' AS ts
					FROM generate_series($2::bigint, $3::bigint) AS g
				),
				apps AS (
					INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
					SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' ||
					        substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
					       p.id, 'Grown Applicant ' || g, 'grown' || g || '@example.com',
					       'grown' || g || '@example.com', ts
					FROM p, g
					RETURNING id, received_at
				),
				events AS (
					INSERT INTO outbox_events (id, kind, aggregate_id, payload, created_at, dispatched_at)
					SELECT gen_random_uuid(), 'application.submitted', id,
					       jsonb_build_object('application_id', id, 'posting_slug', $1::text),
					       received_at, received_at + interval '1 second'
					FROM apps
				),
				keys AS (
					INSERT INTO idempotency_keys (key, fingerprint, state, application_id, response_status,
					                              response_body, created_at, expires_at)
					SELECT 'grown-' || id, sha256(id::text::bytea), 'completed', id, 201,
					       convert_to(json_build_object('id', id, 'job', $1::text, 'received_at', received_at)::text, 'UTF8'),
					       received_at, received_at + interval '48 hours'
					FROM apps
				)
				INSERT INTO deliveries (application_id, state, attempts, last_attempt_at, sent_at, created_at, updated_at)
				SELECT id, 'sent', 1, received_at + interval '2 seconds', received_at + interval '2 seconds',
				       received_at + interval '1 second', received_at + interval '2 seconds'
				FROM apps`, benchSlug, lo, hi)
			return err
		})
		if err != nil {
			return fmt.Errorf("load applications %d to %d: %w", lo, hi, err)
		}
	}
	_, err := pool.Exec(ctx, "VACUUM ANALYZE applications, outbox_events, idempotency_keys, deliveries")
	return err
}

// machine describes the CPU and the Postgres server.
func machine(ctx context.Context, pool *pgxpool.Pool) (Machine, error) {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: runtime.Version(), LoadAvgStart: loadAvg()}
	err := pool.QueryRow(ctx, `SELECT version(), current_setting('fsync'), current_setting('synchronous_commit'),
		current_setting('shared_buffers'), current_setting('max_connections')`).
		Scan(&m.Postgres, &m.Fsync, &m.SynchronousCommit, &m.SharedBuffers, &m.MaxConnections)
	if i := strings.Index(m.Postgres, " on "); i > 0 {
		m.Postgres = m.Postgres[:i]
	}
	return m, err
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the 1, 5 and 15 minute load averages: the figures mean little
// on a machine that was busy with something else.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

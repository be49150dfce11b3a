// Package migrate applies and checks Intake's schema: River's own tables
// (through rivermigrate) and the application's (goose migrations embedded
// from db/migrations). intakectl migrate calls Up; the binaries' /readyz
// calls Check.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/intake/intake/db"
)

// lockKey is the advisory lock that serialises concurrent migrators
// (pg_advisory_lock takes any bigint; this one spells "intake").
const lockKey int64 = 0x696e74616b65

// Migrator applies and checks both schemas over one pool.
type Migrator struct {
	pool   *pgxpool.Pool
	db     *sql.DB
	goose  *goose.Provider
	river  *rivermigrate.Migrator[pgx.Tx]
	logger *slog.Logger
}

// New prepares a migrator; it does not touch the database.
func New(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	migrations, err := fs.Sub(db.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	// River hears only warnings and errors: its info line for each applied
	// migration repeats the one Up logs, in another shape.
	riverLogger := slog.New(minLevel{logger.Handler(), slog.LevelWarn})
	river, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: riverLogger})
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("load River migrations: %w", err)
	}
	return &Migrator{pool: pool, db: sqlDB, goose: provider, river: river, logger: logger}, nil
}

// Close releases the migrator's database/sql handle (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration, River's first. It holds a session
// advisory lock throughout, so replicas that run it at the same moment take
// turns and the later ones find nothing to do; running it again is a no-op.
func (m *Migrator) Up(ctx context.Context) error {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// The lock lives as long as this session: closing the connection (not
	// returning it to the pool) guarantees it is released whatever happens.
	lockConn := conn.Hijack()
	defer lockConn.Close(context.WithoutCancel(ctx))
	if _, err := lockConn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}

	riverRes, err := m.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("River migrations: %w", err)
	}
	for _, v := range riverRes.Versions {
		m.logger.Info("applied River migration", "version", v.Version, "name", v.Name, "duration", v.Duration)
	}

	results, err := m.goose.Up(ctx)
	if err != nil {
		return fmt.Errorf("Intake migrations: %w", err)
	}
	for _, r := range results {
		m.logger.Info("applied Intake migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// ErrSchemaOutdated means the database is reachable but not migrated to the
// version this binary expects; run intakectl migrate.
var ErrSchemaOutdated = errors.New("schema not at the expected version")

// Ready is a replica's readiness: the database answers and both schemas
// are at the versions this binary was built with.
func (m *Migrator) Ready(ctx context.Context) error {
	if err := m.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	return m.Check(ctx)
}

// Check reports whether both schemas are at the versions this binary was
// built with.
func (m *Migrator) Check(ctx context.Context) error {
	// Check only reads: goose creates its version table when asked for
	// versions and it is missing, which would make /readyz run DDL and race
	// a concurrent Up.
	var installed bool
	if err := m.pool.QueryRow(ctx, "SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&installed); err != nil {
		return fmt.Errorf("read Intake schema version: %w", err)
	}
	if !installed {
		return fmt.Errorf("%w: Intake schema not installed", ErrSchemaOutdated)
	}
	current, target, err := m.goose.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("read Intake schema version: %w", err)
	}
	// A newer schema is fine: during a rolling deploy the replicas not yet
	// upgraded run against it (migrations are written to allow that).
	if current < target {
		return fmt.Errorf("%w: Intake schema at version %d, want %d", ErrSchemaOutdated, current, target)
	}
	res, err := m.river.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("read River schema version: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("%w: River: %s", ErrSchemaOutdated, strings.Join(res.Messages, "; "))
	}
	return nil
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

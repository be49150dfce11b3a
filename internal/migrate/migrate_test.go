package migrate_test

import (
	"context"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// testBundle is one migrator over its own pool, and a log of what it did.
type testBundle struct {
	pool     *pgxpool.Pool
	migrator *migrate.Migrator
	logs     *testkit.Buffer
}

func setup(t *testing.T, dbURL string) *testBundle {
	t.Helper()
	pool, err := postgres.NewPool(context.Background(), dbURL, nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	logs := &testkit.Buffer{}
	m, err := migrate.New(pool, slog.New(slog.NewJSONHandler(logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return &testBundle{pool: pool, migrator: m, logs: logs}
}

// intakeVersions are the versions of the embedded goose migrations.
func intakeVersions(t *testing.T) []int64 {
	t.Helper()
	files, err := fs.Glob(db.Migrations, "migrations/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var versions []int64
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		digits := base[:strings.IndexFunc(base, func(r rune) bool { return r < '0' || r > '9' })]
		v, err := strconv.ParseInt(digits, 10, 64)
		require.NoError(t, err, f)
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return versions
}

// riverVersions are the versions of River's main migration line.
func riverVersions(t *testing.T) []int64 {
	t.Helper()
	m, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	require.NoError(t, err)
	var versions []int64
	for _, v := range m.AllVersions() {
		versions = append(versions, int64(v.Version))
	}
	require.NotEmpty(t, versions)
	return versions
}

func queryInts(t *testing.T, pool *pgxpool.Pool, sql string) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return got
}

// requireMigrated checks that both schemas are fully applied, each
// migration recorded exactly once, and the tables the code uses exist.
func requireMigrated(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	// goose records a version 0 row when it creates its table, then one row
	// per applied migration. The table has no unique constraint: a race
	// between two migrators would show here as a repeated version.
	wantGoose := append([]int64{0}, intakeVersions(t)...)
	require.Equal(t, wantGoose,
		queryInts(t, pool, "SELECT version_id FROM goose_db_version WHERE is_applied ORDER BY id"),
		"goose_db_version: every version once, in order")
	require.Equal(t, riverVersions(t),
		queryInts(t, pool, "SELECT version FROM river_migration WHERE line = 'main' ORDER BY version"),
		"river_migration: every River version once")
	require.Equal(t, []int64{0},
		queryInts(t, pool, "SELECT count(*) FROM river_migration WHERE line <> 'main'"))

	for _, table := range []string{
		"postings", "applications", "outbox_events", "idempotency_keys",
		"river_job", "river_leader", "river_queue",
	} {
		var exists bool
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT to_regclass($1) IS NOT NULL", "public."+table).Scan(&exists))
		require.True(t, exists, "table %s missing", table)
	}
}

// requireNoTables checks that the database is still empty.
func requireNoTables(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, tables)
}

func TestUpOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testkit.EmptyDB(t))
	requireNoTables(t, b.pool)

	require.NoError(t, b.migrator.Up(ctx))
	requireMigrated(t, b.pool)
	logs := b.logs.String()
	require.Contains(t, logs, "applied River migration")
	require.Contains(t, logs, "applied Intake migration")
	require.NoError(t, b.migrator.Check(ctx))

	// The schema is live, constraints included.
	_, err := b.pool.Exec(ctx, "INSERT INTO postings (slug, title) VALUES ('go', 'Go')")
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, "INSERT INTO postings (slug, title) VALUES ('Not A Slug', 'Go')")
	require.ErrorContains(t, err, "check constraint")
}

func TestUpTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testkit.EmptyDB(t)
	first := setup(t, dbURL)
	require.NoError(t, first.migrator.Up(ctx))
	requireMigrated(t, first.pool)

	// Again with the same migrator, and with a new one as a second
	// `intakectl migrate` would: nothing applied, nothing recorded twice.
	require.NoError(t, first.migrator.Up(ctx))
	second := setup(t, dbURL)
	require.NoError(t, second.migrator.Up(ctx))
	requireMigrated(t, first.pool)
	require.NotContains(t, second.logs.String(), "applied", "a second Up applies nothing")
	require.NoError(t, second.migrator.Check(ctx))
}

func TestUpConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testkit.EmptyDB(t)

	const n = 4
	bundles := make([]*testBundle, n)
	for i := range bundles {
		bundles[i] = setup(t, dbURL)
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, b := range bundles {
		wg.Go(func() {
			<-start
			errs[i] = b.migrator.Up(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "migrator %d", i)
	}

	requireMigrated(t, bundles[0].pool)
	applied := 0
	for _, b := range bundles {
		require.NoError(t, b.migrator.Check(ctx))
		if strings.Contains(b.logs.String(), "applied Intake migration") {
			applied++
		}
	}
	require.Equal(t, 1, applied, "exactly one migrator applied the Intake schema; the others found it done")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("empty database", func(t *testing.T) {
		t.Parallel()
		b := setup(t, testkit.EmptyDB(t))
		err := b.migrator.Check(ctx)
		require.ErrorIs(t, err, migrate.ErrSchemaOutdated)
		// Check is what /readyz runs on every replica: it only reads. (goose
		// creates its version table when asked for versions; Check must
		// not let it, or a probe would race intakectl migrate's DDL.)
		requireNoTables(t, b.pool)

		require.NoError(t, b.migrator.Up(ctx))
		require.NoError(t, b.migrator.Check(ctx))
	})

	t.Run("River migrated, Intake not", func(t *testing.T) {
		t.Parallel()
		b := setup(t, testkit.EmptyDB(t))
		river, err := rivermigrate.New(riverpgxv5.New(b.pool), nil)
		require.NoError(t, err)
		_, err = river.Migrate(ctx, rivermigrate.DirectionUp, nil)
		require.NoError(t, err)
		require.ErrorIs(t, b.migrator.Check(ctx), migrate.ErrSchemaOutdated)
	})

	t.Run("Intake migrated, River one version behind", func(t *testing.T) {
		t.Parallel()
		b := setup(t, testkit.EmptyDB(t))
		require.NoError(t, b.migrator.Up(ctx))
		river, err := rivermigrate.New(riverpgxv5.New(b.pool), nil)
		require.NoError(t, err)
		_, err = river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{MaxSteps: 1})
		require.NoError(t, err)
		require.ErrorIs(t, b.migrator.Check(ctx), migrate.ErrSchemaOutdated)
	})

	t.Run("template database", func(t *testing.T) {
		t.Parallel()
		pool, _ := testkit.NewPool(t)
		m, err := migrate.New(pool, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		defer m.Close()
		require.NoError(t, m.Check(ctx))
	})
}

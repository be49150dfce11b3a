package testkit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/migrate"
	"github.com/intake/intake/internal/postgres"
)

// ServerURL is the Postgres server tests create their databases on. Set
// INTAKE_TEST_DATABASE_URL to use another one; any database on it will do
// as the maintenance database.
func ServerURL() string {
	if u := os.Getenv("INTAKE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func pgtestdbConfig(tb testing.TB) pgtestdb.Config {
	tb.Helper()
	u, err := url.Parse(ServerURL())
	if err != nil {
		tb.Fatalf("INTAKE_TEST_DATABASE_URL: %v", err)
	}
	pass, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return pgtestdb.Config{
		DriverName: "pgx",
		Host:       u.Hostname(),
		Port:       port,
		User:       u.User.Username(),
		Password:   pass,
		Database:   u.Path[1:],
		Options:    u.RawQuery,
	}
}

// NewDB returns the URL of a fresh database with every migration applied,
// private to this test and dropped when it passes (kept, with its URL
// logged, when it fails).
func NewDB(tb testing.TB) string {
	tb.Helper()
	conf := pgtestdb.Custom(tb, pgtestdbConfig(tb), schemaMigrator{})
	return conf.URL()
}

// NewPool returns a pool over a fresh migrated database (see NewDB).
func NewPool(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	dbURL := NewDB(tb)
	pool, err := postgres.NewPool(context.Background(), dbURL, nil)
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool, dbURL
}

// schemaMigrator lets pgtestdb build its template with intakectl migrate's
// own code, so tests run on exactly the schema production gets.
type schemaMigrator struct{}

// Hash changes whenever a migration, ours or River's, changes.
func (schemaMigrator) Hash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(db.Migrations, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := db.Migrations.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintln(h, path)
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	river, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err != nil {
		return "", err
	}
	for _, m := range river.AllVersions() {
		fmt.Fprintln(h, "river", strconv.Itoa(m.Version), m.SQLUp)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (schemaMigrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	pool, err := postgres.NewPool(ctx, conf.URL(), nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrate.New(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Up(ctx)
}

// EmptyDB creates a database with nothing in it (not cloned from the
// migrated template), for tests of migrating itself, and drops it when the
// test ends.
func EmptyDB(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	server := ServerURL()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("connect to %s: %v", server, err)
	}
	defer conn.Close(ctx)

	name := "intake_empty_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("INTAKE_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

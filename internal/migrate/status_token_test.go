package migrate_test

import (
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// Migration 6 drops the stored status-token hashes and the plain-text
// tokens that stored 201 bodies held in status_url, and keeps the rest of
// each body exactly as it was (the API rebuilds status_url from the id).
func TestStatusTokenMigrationForgetsStoredTokens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := postgres.NewPool(ctx, testkit.EmptyDB(t), nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	sqlDB := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	migrations, err := fs.Sub(db.Migrations, "migrations")
	require.NoError(t, err)
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations)
	require.NoError(t, err)
	_, err = provider.UpTo(ctx, 5)
	require.NoError(t, err)

	// An application stored before: a random token, its hash in the row and
	// the token itself in the stored 201.
	const (
		id    = "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"
		token = "4HS6VK2ZKV5OFWLACTOZRJWAUU"
	)
	storedBefore := `{"id":"` + id + `","job":"go-engineer","received_at":"2026-03-14T09:26:53.589793Z",` +
		`"status_url":"https://jobs.example.com/api/v1/applications/` + id + `/status?token=` + token + `"}`
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			`INSERT INTO postings (slug, title) VALUES ('go-engineer', 'Go engineer')`,
			`INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at, status_token_hash)
			 SELECT '` + id + `', id, 'Ada Lovelace', 'ada@example.com', 'ada@example.com', now(), sha256('` + token + `')
			 FROM postings`,
			`INSERT INTO outbox_events (id, kind, aggregate_id, payload)
			 VALUES (gen_random_uuid(), 'application.submitted', '` + id + `', '{}')`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO idempotency_keys
			(key, fingerprint, state, application_id, response_status, response_body, expires_at)
			VALUES ('key-1', sha256('request'), 'completed', $1, 201, $2, now() + interval '48 hours')`,
			id, []byte(storedBefore))
		return err
	})
	require.NoError(t, err)

	_, err = provider.UpTo(ctx, 6)
	require.NoError(t, err)

	// The old hash column stays, nullable and unused, for API replicas of
	// the previous version still serving during a rolling upgrade; the
	// stored hashes stay until a later migration drops the column, but no
	// new application gets one.
	var nullable string
	require.NoError(t, pool.QueryRow(ctx, `SELECT is_nullable FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'applications' AND column_name = 'status_token_hash'`).Scan(&nullable))
	require.Equal(t, "YES", nullable)
	var stored []byte
	require.NoError(t, pool.QueryRow(ctx, `SELECT response_body FROM idempotency_keys WHERE key = 'key-1'`).Scan(&stored))
	require.NotContains(t, string(stored), token)
	var before, after map[string]any
	require.NoError(t, json.Unmarshal([]byte(storedBefore), &before))
	require.NoError(t, json.Unmarshal(stored, &after))
	delete(before, "status_url")
	require.Equal(t, before, after, "the rest of the receipt is kept as it was")
}

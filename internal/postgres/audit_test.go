package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// The database refuses to rewrite the audit log, whoever asks.
func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	require.NoError(t, store.Audit(t.Context(), access.Entry{Actor: access.ActorSystem, Action: "test.append", Outcome: access.OutcomeOK}))

	for _, sql := range []string{
		`UPDATE audit_log SET actor = 'someone else'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		_, err := pool.Exec(t.Context(), sql)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, sql)
		require.Equal(t, "42501", pgErr.Code, sql)
		require.Contains(t, pgErr.Message, "audit_log is append-only", sql)
	}
	var actor string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT actor FROM audit_log`).Scan(&actor))
	require.Equal(t, access.ActorSystem, actor)
}

// Tokens: the format is checked before any query, the stored hash is the
// only copy, and a mint above the caller's role is refused.
func TestTokenStore(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	operator := access.Caller{Actor: access.CLIActor("test")}
	tok, secret, err := store.CreateToken(t.Context(), operator, access.NewTokenSpec{Name: "ci", Role: access.RoleViewer})
	require.NoError(t, err)
	require.Equal(t, "cli:test", tok.CreatedBy)
	require.Len(t, secret, access.TokenLen)

	var stored []byte
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT token_hash FROM admin_tokens WHERE id = $1`, tok.ID).Scan(&stored))
	require.Equal(t, access.HashToken(secret), stored)
	var holdsText bool
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM admin_tokens t WHERE row_to_json(t)::text LIKE '%' || $1 || '%')`,
		secret[len(access.TokenPrefix):]).Scan(&holdsText))
	require.False(t, holdsText)

	got, err := store.Authenticate(t.Context(), secret)
	require.NoError(t, err)
	require.Equal(t, tok.ID, got.ID)
	for _, bad := range []string{"", secret + "a", secret[:len(secret)-1], "intk_" + secret, access.NewToken()} {
		_, err := store.Authenticate(t.Context(), bad)
		require.ErrorIs(t, err, access.ErrTokenInvalid, bad)
	}

	viewer := access.Caller{Actor: access.TokenActor(tok.ID), TokenID: tok.ID, Role: access.RoleViewer}
	_, _, err = store.CreateToken(t.Context(), viewer, access.NewTokenSpec{Name: "up", Role: access.RoleAdmin})
	require.ErrorIs(t, err, access.ErrRoleTooHigh)
}

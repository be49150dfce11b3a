package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/postgres/dbsqlc"
	"github.com/intake/intake/internal/testkit"
)

// queryRecorder keeps the SQL and arguments of the queries a connection
// runs.
type queryRecorder struct {
	sql  []string
	args [][]any
}

func (r *queryRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.sql = append(r.sql, d.SQL)
	r.args = append(r.args, d.Args)
	return ctx
}

func (r *queryRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func quarantineSetup(t *testing.T, events int) (*pgxpool.Pool, string, *postgres.Store) {
	t.Helper()
	pool, dbURL := testkit.NewPool(t)
	store := postgres.NewStore(pool)
	_, err := store.CreatePosting(t.Context(), application.NewPosting{Slug: "go-engineer", Title: "Go engineer"})
	require.NoError(t, err)
	testkit.Seed(t, pool, "go-engineer", events)
	return pool, dbURL, store
}

// The relay's claim reads the partial index alone: quarantined events are
// not in it, so however many sit in quarantine, the claim neither reads
// nor filters them.
func TestClaimReadsOnlyTheUndispatchedIndex(t *testing.T) {
	t.Parallel()
	pool, dbURL, _ := quarantineSetup(t, 20)
	_, err := pool.Exec(t.Context(), `UPDATE outbox_events SET quarantined_at = now(), quarantine_error = 'test'
		WHERE id IN (SELECT id FROM outbox_events ORDER BY created_at, id LIMIT 5)`)
	require.NoError(t, err)

	// Run the generated claim on a connection that records its SQL, so the
	// plan below is the real query's.
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	rec := &queryRecorder{}
	cfg.Tracer = rec
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	claimed, err := dbsqlc.New(tx).OutboxClaim(t.Context(), 100)
	require.NoError(t, err)
	require.Len(t, claimed, 15, "quarantined events were claimed")
	claimSQL, claimArgs := rec.sql[len(rec.sql)-1], rec.args[len(rec.args)-1]
	require.Contains(t, claimSQL, "OutboxClaim")

	// On a table this small the planner would rather read it whole; with
	// that choice taken away it shows which index serves the claim. The
	// quarantined events are the oldest, first in (created_at, id) order:
	// were they in the index, the scan would read them and filter them out.
	_, err = tx.Exec(t.Context(), `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	rows, err := tx.Query(t.Context(), "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "+claimSQL, claimArgs...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	require.Contains(t, plan, "Index Scan using outbox_events_undispatched_idx", plan)
	require.NotContains(t, plan, "Rows Removed by Filter", "the claim reads quarantined events:\n%s", plan)
	require.NotContains(t, plan, "Sort", plan)
}

func TestReleaseQuarantined(t *testing.T) {
	t.Parallel()
	pool, _, store := quarantineSetup(t, 4)
	operator := access.Caller{Actor: access.CLIActor("test")}
	rows, err := pool.Query(t.Context(), `SELECT id::text FROM outbox_events ORDER BY created_at, id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `UPDATE outbox_events SET quarantined_at = now(), quarantine_error = 'payload: test'
		WHERE id = ANY($1)`, ids[:3])
	require.NoError(t, err)
	quarantined := func() int64 {
		t.Helper()
		q, err := store.Quarantine(t.Context())
		require.NoError(t, err)
		return q.Events
	}
	require.EqualValues(t, 3, quarantined())

	listed, err := store.OutboxEvents(t.Context(), 0)
	require.NoError(t, err)
	require.Len(t, listed, 3)
	require.Equal(t, "payload: test", listed[0].Error)
	require.NotNil(t, listed[0].QuarantinedAt)
	listed, err = store.OutboxEvents(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, listed, 4, "with waiting events")
	require.Equal(t, ids[3], listed[3].ID)
	require.Nil(t, listed[3].QuarantinedAt)

	// An unknown id releases nothing, not even the known ones beside it.
	unknown := uuid.NewString()
	_, err = store.ReleaseQuarantined(t.Context(), operator, []string{ids[0], unknown})
	require.EqualError(t, err, "no outbox event with id "+unknown)
	_, err = store.ReleaseQuarantined(t.Context(), operator, []string{"nope"})
	require.EqualError(t, err, `"nope" is not an event id`)
	require.EqualValues(t, 3, quarantined())

	released, err := store.ReleaseQuarantined(t.Context(), operator, []string{ids[0], ids[3]})
	require.NoError(t, err)
	require.Equal(t, []string{ids[0]}, released, "only the quarantined one of the two is released")
	released, err = store.ReleaseQuarantined(t.Context(), operator, []string{ids[0]})
	require.NoError(t, err)
	require.Empty(t, released, "releasing again is a no-op")

	released, err = store.ReleaseQuarantined(t.Context(), operator, nil)
	require.NoError(t, err)
	require.ElementsMatch(t, ids[1:3], released, "no ids: every quarantined event")
	require.Zero(t, quarantined())
	var cleared int
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(*) FROM outbox_events WHERE quarantined_at IS NULL AND quarantine_error IS NULL AND dispatched_at IS NULL`).Scan(&cleared))
	require.Equal(t, 4, cleared)
}

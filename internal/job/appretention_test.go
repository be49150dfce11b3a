package job_test

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/job"
)

// Application retention by its clock: the applications received before
// the cutoff are erased through the erasure (personal fields replaced,
// unsent confirmation cancelled), more than one batch of them, each
// audited as the system with the reason "retention"; recent ones are kept;
// one erased before is skipped (no second audit row, its erasure time
// kept).
func TestApplicationRetentionErasesOldOnes(t *testing.T) {
	t.Parallel()
	b := setupReport(t)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	old := job.ApplicationRetentionBatch + 7
	for i := range old {
		id := b.app(t, "engineer", "old"+strconv.Itoa(i)+"@example.com", now.Add(-31*24*time.Hour-time.Duration(i)*time.Minute))
		b.delivery(t, id, "retrying", 0)
	}
	erasedBefore := b.app(t, "designer", "gone@example.com", now.Add(-60*24*time.Hour))
	require.NoError(t, b.store.EraseApplication(t.Context(), eraser, erasedBefore, "asked"))
	var erasedAt time.Time
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT erased_at FROM applications WHERE id = $1`, erasedBefore).Scan(&erasedAt))
	recent := b.app(t, "engineer", "recent@example.com", now.Add(-29*24*time.Hour))

	w := &job.ApplicationRetentionWorker{Store: b.store, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now }, Retention: 30 * 24 * time.Hour}
	require.NoError(t, w.Work(t.Context(), &river.Job[job.ApplicationRetentionArgs]{}))

	require.Equal(t, old+1, b.count(t, `SELECT count(*) FROM applications WHERE erased_at IS NOT NULL`))
	require.Equal(t, old, b.count(t, `SELECT count(*) FROM applications WHERE full_name = '(erased)' AND email LIKE 'erased+%@invalid' AND id <> $1`, erasedBefore))
	require.Equal(t, old, b.count(t, `SELECT count(*) FROM deliveries WHERE state = 'cancelled' AND last_error_class = 'erased' AND application_id <> $1`, erasedBefore))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM applications WHERE id = $1 AND erased_at IS NULL AND full_name = 'Applicant'`, recent))
	require.Equal(t, old, b.count(t, `SELECT count(*) FROM audit_log WHERE actor = $1 AND action = 'applications.erase' AND detail = 'retention' AND outcome = 'ok'`, access.ActorSystem))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_log WHERE target_id = $1`, erasedBefore), "the erased one is skipped")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM applications WHERE id = $1 AND erased_at = $2`, erasedBefore, erasedAt))

	// A run with nothing due erases nothing more; off erases nothing at all.
	require.NoError(t, w.Work(t.Context(), &river.Job[job.ApplicationRetentionArgs]{}))
	require.Equal(t, old, b.count(t, `SELECT count(*) FROM audit_log WHERE detail = 'retention'`))
	off := &job.ApplicationRetentionWorker{Store: b.store, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now.Add(365 * 24 * time.Hour) }}
	require.NoError(t, off.Work(t.Context(), &river.Job[job.ApplicationRetentionArgs]{}))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM applications WHERE id = $1 AND erased_at IS NULL`, recent))
}

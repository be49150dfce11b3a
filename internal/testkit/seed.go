package testkit

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Seed inserts n applications to the posting slug, each with its
// application.submitted event, in one transaction, the way the submit path
// would leave them (emails applicant<i>@example.com).
func Seed(tb testing.TB, pool *pgxpool.Pool, slug string, n int) {
	tb.Helper()
	_, err := pool.Exec(context.Background(), `
		WITH p AS (SELECT id FROM postings WHERE slug = $1),
		apps AS (
			INSERT INTO applications (id, posting_id, full_name, email, email_normalized, received_at)
			SELECT gen_random_uuid(), p.id, 'Applicant ' || g, 'applicant' || g || '@example.com',
			       'applicant' || g || '@example.com', now()
			FROM p, generate_series(1, $2::int) AS g
			RETURNING id
		)
		INSERT INTO outbox_events (id, kind, aggregate_id, payload)
		SELECT gen_random_uuid(), 'application.submitted', apps.id,
		       jsonb_build_object('application_id', apps.id, 'posting_slug', $1::text)
		FROM apps`, slug, n)
	if err != nil {
		tb.Fatalf("seed %d applications: %v", n, err)
	}
}

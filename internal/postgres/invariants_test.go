package postgres_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// These tests write rows with raw SQL, bypassing Store, to show that the
// schema itself refuses what would break the invariants (SPEC section 4),
// whatever code writes to it.

// row is the columns of one row to insert.
type row map[string]any

// insertRow inserts r into table (a name from the test, never input).
func insertRow(ctx context.Context, tx pgx.Tx, table string, r row) error {
	cols := slices.Sorted(maps.Keys(r))
	params := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		params[i] = "$" + strconv.Itoa(i+1)
		args[i] = r[c]
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") VALUES ("+strings.Join(params, ", ")+")", args...)
	return err
}

// completeSubmission is the three rows the submit transaction writes, valid
// as they are; a test breaks one column.
type completeSubmission struct {
	application, event, key row
}

func newCompleteSubmission(postingID int64) completeSubmission {
	appID := uuid.New()
	email := strings.ToLower(rand.Text()) + "@example.com"
	fingerprint := sha256.Sum256([]byte(email))
	return completeSubmission{
		application: row{
			"id":               appID,
			"posting_id":       postingID,
			"full_name":        "Ada Lovelace",
			"email":            " " + strings.ToUpper(email[:1]) + email[1:],
			"email_normalized": email,
			"phone":            "+44 20 7946 0000",
			"cover_letter":     "I like engines.",
			"links":            []string{"https://example.com/ada"},
			"received_at":      time.Now(),
		},
		event: row{
			"id":           uuid.New(),
			"kind":         "application.submitted",
			"aggregate_id": appID,
			"payload":      json.RawMessage(`{"application_id":"` + appID.String() + `"}`),
		},
		key: row{
			"key":             "key-" + rand.Text(),
			"fingerprint":     fingerprint[:],
			"state":           "completed",
			"application_id":  appID,
			"response_status": 201,
			"response_body":   []byte(`{}`),
			"expires_at":      time.Now().Add(25 * time.Hour),
		},
	}
}

// insert writes the application, then its event, then its key, stopping at
// the first error.
func (s completeSubmission) insert(ctx context.Context, tx pgx.Tx) error {
	if err := insertRow(ctx, tx, "applications", s.application); err != nil {
		return err
	}
	if err := insertRow(ctx, tx, "outbox_events", s.event); err != nil {
		return err
	}
	return insertRow(ctx, tx, "idempotency_keys", s.key)
}

func setupRaw(t *testing.T) (*pgxpool.Pool, int64) {
	t.Helper()
	pool, _ := testkit.NewPool(t)
	var postingID int64
	err := pool.QueryRow(t.Context(),
		`INSERT INTO postings (slug, title) VALUES ('engineer', 'Engineer') RETURNING id`).Scan(&postingID)
	require.NoError(t, err)
	return pool, postingID
}

func requirePgError(t *testing.T, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, code, pgErr.Code, "SQLSTATE of %v", pgErr)
	if constraint != "" {
		require.Equal(t, constraint, pgErr.ConstraintName, "constraint of %v", pgErr)
	}
}

func TestSchemaCommitsCompleteSubmission(t *testing.T) {
	t.Parallel()
	pool, postingID := setupRaw(t)
	ctx := t.Context()

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return newCompleteSubmission(postingID).insert(ctx, tx)
	})
	require.NoError(t, err)
	require.Equal(t, [3]int{1, 1, 1}, counts(t, pool))
}

func TestSchemaEnforcesInvariants(t *testing.T) {
	t.Parallel()
	pool, postingID := setupRaw(t)

	// The first application from this email is committed; the duplicate
	// case tries a second one.
	existing := newCompleteSubmission(postingID)
	require.NoError(t, pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		return existing.insert(t.Context(), tx)
	}))

	tests := []struct {
		name string
		// write runs in a transaction; commit follows when it succeeds.
		write func(ctx context.Context, tx pgx.Tx) error
		// atCommit says the refusal comes at COMMIT, not at the statement.
		atCommit   bool
		code       string
		constraint string
	}{
		{
			name: "application without its event",
			write: func(ctx context.Context, tx pgx.Tx) error {
				return insertRow(ctx, tx, "applications", newCompleteSubmission(postingID).application)
			},
			atCommit: true,
			code:     "23000", // integrity_constraint_violation, raised by applications_have_event
		},
		{
			name: "application with a key but without its event",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				if err := insertRow(ctx, tx, "applications", s.application); err != nil {
					return err
				}
				return insertRow(ctx, tx, "idempotency_keys", s.key)
			},
			atCommit: true,
			code:     "23000",
		},
		{
			name: "event for an application that does not exist",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				s.event["aggregate_id"] = uuid.New()
				return insertRow(ctx, tx, "outbox_events", s.event)
			},
			code:       "23503",
			constraint: "outbox_events_aggregate_id_fkey",
		},
		{
			// Submit's one statement relies on it: an application it did
			// not insert leaves its key pointing at nothing, refused here.
			name: "completed key for an application that does not exist",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				s.key["application_id"] = uuid.New()
				return insertRow(ctx, tx, "idempotency_keys", s.key)
			},
			code:       "23503",
			constraint: "idempotency_keys_application_id_fkey",
		},
		{
			name: "idempotency key left processing",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				s.key["state"] = "processing"
				return s.insert(ctx, tx)
			},
			atCommit: true,
			code:     "23000", // raised by idempotency_keys_complete_at_commit
		},
		{
			name: "idempotency key left processing without an application",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				s.key["state"] = "processing"
				delete(s.key, "application_id")
				delete(s.key, "response_status")
				delete(s.key, "response_body")
				return insertRow(ctx, tx, "idempotency_keys", s.key)
			},
			atCommit: true,
			code:     "23000",
		},
		{
			name: "same posting and normalised email",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				s.application["email"] = strings.ToUpper(existing.application["email_normalized"].(string))
				s.application["email_normalized"] = existing.application["email_normalized"]
				return s.insert(ctx, tx)
			},
			code:       "23505",
			constraint: "applications_posting_email_key",
		},
		{
			name: "second application.submitted event for one application",
			write: func(ctx context.Context, tx pgx.Tx) error {
				s := newCompleteSubmission(postingID)
				s.event["aggregate_id"] = existing.application["id"]
				return insertRow(ctx, tx, "outbox_events", s.event)
			},
			code:       "23505",
			constraint: "outbox_events_aggregate_kind_key",
		},
	}
	// The group returns when its parallel cases are done.
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				tx, err := pool.Begin(ctx)
				require.NoError(t, err)
				defer func() { _ = tx.Rollback(context.Background()) }()

				err = tt.write(ctx, tx)
				if tt.atCommit {
					require.NoError(t, err, "refused before COMMIT")
					err = tx.Commit(ctx)
				}
				require.Error(t, err)
				requirePgError(t, err, tt.code, tt.constraint)
			})
		}
	})
	// Only the committed first submission is there.
	require.Equal(t, [3]int{1, 1, 1}, counts(t, pool))
}

func TestSchemaChecks(t *testing.T) {
	t.Parallel()
	pool, postingID := setupRaw(t)

	long := func(n int) string { return strings.Repeat("é", n) }
	tests := []struct {
		name       string
		breakIt    func(s completeSubmission)
		constraint string
	}{
		{"full_name of 201 characters", func(s completeSubmission) { s.application["full_name"] = long(201) }, "applications_full_name_check"},
		{"empty full_name", func(s completeSubmission) { s.application["full_name"] = "" }, "applications_full_name_check"},
		{"email of 255 bytes", func(s completeSubmission) {
			// Its normalised form, trimmed, is 254 bytes: only email is too long.
			e := strings.Repeat("a", 242) + "@example.com"
			s.application["email"], s.application["email_normalized"] = " "+e, e
		}, "applications_email_check"},
		// The email_normalized check names two columns, so Postgres names
		// it after the table alone.
		{"email_normalized not the normalised email", func(s completeSubmission) {
			s.application["email_normalized"] = "other@example.com"
		}, "applications_check"},
		{"email_normalized of 255 bytes", func(s completeSubmission) {
			e := strings.Repeat("a", 243) + "@example.com"
			s.application["email"], s.application["email_normalized"] = e, e
		}, "applications_check"},
		{"phone of 41 characters", func(s completeSubmission) { s.application["phone"] = strings.Repeat("1", 41) }, "applications_phone_check"},
		{"empty phone", func(s completeSubmission) { s.application["phone"] = "" }, "applications_phone_check"},
		{"cover_letter of 10001 characters", func(s completeSubmission) { s.application["cover_letter"] = long(10001) }, "applications_cover_letter_check"},
		{"six links", func(s completeSubmission) {
			s.application["links"] = slices.Repeat([]string{"https://example.com"}, 6)
		}, "applications_links_check"},
		{"link of 2049 characters", func(s completeSubmission) {
			s.application["links"] = []string{"https://example.com/" + strings.Repeat("a", 2049-20)}
		}, "applications_links_check"},
		{"empty link", func(s completeSubmission) { s.application["links"] = []string{""} }, "applications_links_check"},
		// The field rules' backstop (migration 7).
		{"full_name only a zero-width space", func(s completeSubmission) { s.application["full_name"] = "\u200b" }, "applications_full_name_plain"},
		{"full_name with a right-to-left override", func(s completeSubmission) { s.application["full_name"] = "Ann \u202efdp.exe" }, "applications_full_name_plain"},
		{"full_name with a soft hyphen", func(s completeSubmission) { s.application["full_name"] = "An\u00adn" }, "applications_full_name_plain"},
		{"full_name with a tag character", func(s completeSubmission) { s.application["full_name"] = "Ann\U000e0041" }, "applications_full_name_plain"},
		{"email with a zero-width space", func(s completeSubmission) {
			s.application["email"], s.application["email_normalized"] = "a\u200b@example.com", "a\u200b@example.com"
		}, "applications_email_plain"},
		{"full_name with a line separator", func(s completeSubmission) { s.application["full_name"] = "Ada\u2028Evil" }, "applications_full_name_plain"},
		{"phone with a byte-order mark", func(s completeSubmission) { s.application["phone"] = "\ufeff+44 20 7946 0958" }, "applications_phone_plain"},
		{"link with an isolate", func(s completeSubmission) { s.application["links"] = []string{"https://example.com/\u2066x"} }, "applications_links_plain"},
		{"link with a password", func(s completeSubmission) { s.application["links"] = []string{"https://ann:pw@example.com/"} }, "applications_links_plain"},
		{"cover_letter with an override", func(s completeSubmission) { s.application["cover_letter"] = "Hi \u202eyrros" }, "applications_cover_letter_direction"},
		{"other event kind", func(s completeSubmission) { s.event["kind"] = "application.erased" }, "outbox_events_kind_check"},
		{"payload not an object", func(s completeSubmission) { s.event["payload"] = json.RawMessage(`["id"]`) }, "outbox_events_payload_check"},
		{"key of 256 characters", func(s completeSubmission) { s.key["key"] = strings.Repeat("k", 256) }, "idempotency_keys_key_check"},
		{"empty key", func(s completeSubmission) { s.key["key"] = "" }, "idempotency_keys_key_check"},
		{"key not printable ASCII", func(s completeSubmission) { s.key["key"] = "clé" }, "idempotency_keys_key_check"},
		{"key with a control character", func(s completeSubmission) { s.key["key"] = "a\tb" }, "idempotency_keys_key_check"},
		{"fingerprint of 31 bytes", func(s completeSubmission) { s.key["fingerprint"] = make([]byte, 31) }, "idempotency_keys_fingerprint_check"},
		{"key living 23 hours", func(s completeSubmission) {
			now := time.Now()
			s.key["created_at"], s.key["expires_at"] = now, now.Add(23*time.Hour)
		}, "idempotency_keys_lifetime"},
		{"completed key without response", func(s completeSubmission) { delete(s.key, "response_body") }, "idempotency_keys_completed"},
		{"completed key without application", func(s completeSubmission) { delete(s.key, "application_id") }, "idempotency_keys_completed"},
		{"response status 600", func(s completeSubmission) { s.key["response_status"] = 600 }, "idempotency_keys_response_status_check"},
	}
	// The group returns when its parallel cases are done.
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				s := newCompleteSubmission(postingID)
				tt.breakIt(s)
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return s.insert(ctx, tx) })
				requirePgError(t, err, "23514", tt.constraint)
			})
		}
	})
	require.Equal(t, [3]int{0, 0, 0}, counts(t, pool), "a broken row was stored")
}

// A failure anywhere in the submit transaction, at a statement or at
// COMMIT, leaves nothing behind (SPEC section 5: "commit fails").
func TestSubmitLeavesNothingWhenTransactionFails(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		table   string // the table the trigger is on
		trigger string
	}{
		{
			name:  "event insert fails",
			table: "outbox_events",
			trigger: `CREATE TRIGGER forced_failure BEFORE INSERT ON outbox_events
			          FOR EACH ROW EXECUTE FUNCTION forced_failure()`,
		},
		{
			name:  "commit fails",
			table: "idempotency_keys",
			trigger: `CREATE CONSTRAINT TRIGGER forced_failure AFTER INSERT ON idempotency_keys
			          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION forced_failure()`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSubmit(t)
			ctx := t.Context()
			_, err := b.pool.Exec(ctx, `
				CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					RAISE EXCEPTION 'forced failure';
				END;
				$$`)
			require.NoError(t, err)
			_, err = b.pool.Exec(ctx, tt.trigger)
			require.NoError(t, err)

			sub := b.submission(t, submissionOpts{})
			res, err := b.store.Submit(ctx, sub)
			require.ErrorContains(t, err, "forced failure")
			require.Zero(t, res)
			require.Equal(t, [3]int{0, 0, 0}, counts(t, b.pool), "applications, events, keys after a failed submit")

			// The key was not burned: once the fault is gone, the same
			// request with the same key goes through, once.
			_, err = b.pool.Exec(ctx, `DROP TRIGGER forced_failure ON `+tt.table)
			require.NoError(t, err)
			res, err = b.store.Submit(ctx, sub)
			require.NoError(t, err)
			require.False(t, res.Replayed)
			require.Equal(t, [3]int{1, 1, 1}, counts(t, b.pool))
		})
	}
}

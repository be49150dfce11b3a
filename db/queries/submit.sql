-- The statements of the submit transaction, in the order
-- postgres.Store.Submit runs them.

-- name: IdempotencyKeyClaim :one
-- Claims the key for this transaction. When another transaction holds the
-- same key uncommitted, this waits for it (bounded by lock_timeout); when the
-- key is already committed, it returns no row.
-- The key lives until @expires_at but never less than 24 hours after
-- created_at (the transaction's now()): the caller computes @expires_at from
-- its own clock, before the transaction started, so with a 24h TTL it falls
-- short of the table's idempotency_keys_lifetime check.
INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)
VALUES (@key, @fingerprint, 'processing',
        greatest(@expires_at::timestamptz, now() + interval '24 hours'))
ON CONFLICT (key) DO NOTHING
RETURNING key;

-- name: IdempotencyKeyGet :one
SELECT fingerprint, state, response_status, response_body
FROM idempotency_keys
WHERE key = @key;

-- name: ApplicationInsert :one
-- Inserts the application if its posting is open and has no application
-- from the same normalised email; no row otherwise (the caller finds out
-- which). ON CONFLICT keeps the transaction usable instead of aborting it.
INSERT INTO applications (
    id, posting_id, full_name, email, email_normalized,
    phone, cover_letter, links, received_at,
    answers
)
SELECT @id, p.id, @full_name, @email, @email_normalized,
       sqlc.narg(phone), sqlc.narg(cover_letter), @links::text[], @received_at,
       @answers::jsonb
FROM postings p
WHERE p.slug = @posting_slug AND p.status = 'open'
ON CONFLICT (posting_id, email_normalized) DO NOTHING
RETURNING id;

-- name: OutboxEventInsert :exec
INSERT INTO outbox_events (id, kind, aggregate_id, payload)
VALUES (@id, @kind, @aggregate_id, @payload);

-- name: IdempotencyKeyComplete :execrows
UPDATE idempotency_keys
SET state = 'completed',
    application_id = @application_id::uuid,
    response_status = @response_status::smallint,
    response_body = @response_body
WHERE key = @key AND state = 'processing';

-- name: OutboxNotify :exec
-- Wakes the relay. Sent after commit, coalesced: see postgres.Waker.
SELECT pg_notify(@channel::text, '');

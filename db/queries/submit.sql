-- The statements of the submit transaction, in the order
-- postgres.Store.Submit runs them when its one-statement form
-- (SubmissionInsert, below) did not store the submit, or the submit has a CV.

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

-- name: SubmissionInsert :one
-- The whole submit of an application without a CV in one autocommit
-- statement (one round trip instead of the transaction's six): the
-- idempotency key, completed, then the application, then its
-- application.submitted event. It returns 1 when it stored all three and
-- 0 when it stored nothing; the caller then runs the transaction, which
-- answers each case (replay, reused key, duplicate, closed or unknown
-- posting). Why it is safe:
--   - One statement is all-or-nothing by itself, and the deferred triggers
--     fire at its commit, after every insert: invariant 1's trigger finds
--     the event, the key's trigger finds it completed.
--   - The key comes first, as in the transaction, so both forms lock a key
--     before an email and never deadlock each other (with the key last, a
--     transaction holding the key and waiting for this statement's email
--     would). A key someone else holds uncommitted makes the insert wait
--     (bounded by lock_timeout), then fail when it commits: the key has no
--     ON CONFLICT, so a key taken meanwhile undoes the whole statement.
--   - The NOT EXISTS tests answer the usual refusals, a replayed or reused
--     key and a duplicate email already committed, with 0 rows instead of
--     an error. A duplicate committed while the application insert waited
--     for it inserts no application (ON CONFLICT): the key then points at
--     no application, and its foreign key undoes the whole statement, so a
--     key is never stored without its application.
WITH posting AS (
    SELECT p.id FROM postings p WHERE p.slug = @posting_slug AND p.status = 'open'
), completed_key AS (
    INSERT INTO idempotency_keys (
        key, fingerprint, state, expires_at,
        application_id, response_status, response_body
    )
    SELECT @key, @fingerprint, 'completed',
           greatest(@expires_at::timestamptz, now() + interval '24 hours'),
           @id::uuid, @response_status::smallint, @response_body::bytea
    FROM posting
    WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.key = @key)
      AND NOT EXISTS (SELECT 1 FROM applications a
                      WHERE a.posting_id = posting.id AND a.email_normalized = @email_normalized)
    RETURNING application_id
), application AS (
    INSERT INTO applications (
        id, posting_id, full_name, email, email_normalized,
        phone, cover_letter, links, received_at,
        answers
    )
    SELECT k.application_id, posting.id, @full_name, @email, @email_normalized,
           sqlc.narg(phone), sqlc.narg(cover_letter), @links::text[], @received_at,
           @answers::jsonb
    FROM completed_key k CROSS JOIN posting
    ON CONFLICT (posting_id, email_normalized) DO NOTHING
    RETURNING id
), event AS (
    INSERT INTO outbox_events (id, kind, aggregate_id, payload)
    SELECT @event_id::uuid, @kind, application.id, @payload::jsonb
    FROM application
)
SELECT count(*) FROM application;

-- Retention (job.RetentionWorker): each statement deletes one batch in its
-- own short transaction. The rows are picked FOR UPDATE SKIP LOCKED, so a
-- row that a submit or the relay holds is skipped, never waited for, and
-- the lock on each batch lasts one statement.

-- name: OutboxDeleteDispatched :execrows
-- Dispatched events older than the cutoff, oldest first, from the
-- dispatched-only index. Undispatched and quarantined events are never
-- deleted: they are work still to do.
DELETE FROM outbox_events
WHERE id IN (
    SELECT id FROM outbox_events
    WHERE dispatched_at IS NOT NULL AND dispatched_at < @cutoff::timestamptz
    ORDER BY dispatched_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED);

-- name: IdempotencyKeysDeleteExpired :execrows
-- Keys whose lifetime is over (at least 24 h after they were made, by the
-- table's own constraint), from the expiry index.
DELETE FROM idempotency_keys
WHERE key IN (
    SELECT key FROM idempotency_keys
    WHERE expires_at < @cutoff::timestamptz
    ORDER BY expires_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED);

-- name: OutboxStaleCount :one
-- The reconciler's count of events the relay should have dispatched by now
-- (older than the cutoff, neither dispatched nor quarantined), from the
-- relay's own partial index.
SELECT count(*)::bigint
FROM outbox_events
WHERE dispatched_at IS NULL AND quarantined_at IS NULL AND created_at < @cutoff::timestamptz;

-- name: DeliveriesReconciledCount :one
-- What the reconciler did, for intakectl status: every delivery it
-- re-enqueued, and those since the cutoff.
SELECT count(*)::bigint AS reconciled,
       count(*) FILTER (WHERE reconciled_at >= @since::timestamptz)::bigint AS recent
FROM deliveries
WHERE reconciled_at IS NOT NULL;

-- name: ApplicationsRetentionBatch :many
-- Application retention: up to max_rows applications received before the
-- cutoff and not erased yet, oldest first from the unerased-only index,
-- locked for the erasure that follows in the same transaction (NO KEY
-- UPDATE, as ApplicationIDsByEmail). Rows another transaction holds are
-- skipped, never waited for.
SELECT id FROM applications
WHERE erased_at IS NULL AND received_at < @cutoff::timestamptz
ORDER BY received_at, id
LIMIT @max_rows
FOR NO KEY UPDATE SKIP LOCKED;

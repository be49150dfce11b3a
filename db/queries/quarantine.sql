-- Quarantined outbox events, for intakectl outbox list and retry.

-- name: OutboxQuarantined :many
SELECT id, kind, aggregate_id, created_at, quarantined_at, quarantine_error
FROM outbox_events
WHERE quarantined_at IS NOT NULL
ORDER BY quarantined_at, id;

-- name: OutboxQuarantineCount :one
SELECT count(*)::bigint AS quarantined,
       coalesce(extract(epoch FROM now() - min(quarantined_at)), 0)::float8 AS oldest_seconds
FROM outbox_events
WHERE quarantined_at IS NOT NULL;

-- name: OutboxWaiting :many
-- The oldest events waiting for the relay (intakectl outbox list --all).
SELECT id, kind, aggregate_id, created_at
FROM outbox_events
WHERE dispatched_at IS NULL AND quarantined_at IS NULL
ORDER BY created_at, id
LIMIT @max_events;

-- name: OutboxEventsKnown :many
SELECT id FROM outbox_events WHERE id = ANY(@ids::uuid[]);

-- name: OutboxRelease :many
-- Clears the quarantine (of the given events, or of all of them when none
-- is given): the next relay round claims them again.
UPDATE outbox_events
SET quarantined_at = NULL, quarantine_error = NULL
WHERE quarantined_at IS NOT NULL
  AND (cardinality(@ids::uuid[]) = 0 OR id = ANY(@ids::uuid[]))
RETURNING id;

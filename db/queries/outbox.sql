-- The relay's round, in the order postgres.Store.DispatchEvents runs it,
-- all in one transaction.

-- name: OutboxClaim :many
-- Oldest undispatched events first, served by the partial index (whose
-- predicate is this WHERE: quarantined events are not in it). SKIP LOCKED
-- lets any number of relays run: each claims rows nobody else holds, and a
-- slow or dead relay's rows are skipped, not waited for.
SELECT id, kind, aggregate_id, payload, created_at
FROM outbox_events
WHERE dispatched_at IS NULL AND quarantined_at IS NULL
ORDER BY created_at, id
LIMIT @max_events
FOR UPDATE SKIP LOCKED;

-- name: OutboxMarkDispatched :exec
UPDATE outbox_events SET dispatched_at = now() WHERE id = ANY(@ids::uuid[]);

-- name: OutboxQuarantine :exec
-- Sets aside a claimed event that cannot become jobs, with its error. One
-- statement per event: poison events are rare, the happy path never runs it.
UPDATE outbox_events SET quarantined_at = now(), quarantine_error = @error::text WHERE id = @id;

-- name: DeliveryQueue :exec
-- Opens the ledger row that the status page reads as "queued".
INSERT INTO deliveries (application_id)
SELECT unnest(@application_ids::uuid[])
ON CONFLICT (application_id) DO NOTHING;

-- The relay's round, in the order postgres.Store.DispatchEvents runs it,
-- all in one transaction.

-- name: OutboxClaim :many
-- Oldest undispatched events first, served by the partial index. SKIP LOCKED
-- lets any number of relays run: each claims rows nobody else holds, and a
-- slow or dead relay's rows are skipped, not waited for.
SELECT id, kind, aggregate_id, payload, created_at
FROM outbox_events
WHERE dispatched_at IS NULL
ORDER BY created_at, id
LIMIT @max_events
FOR UPDATE SKIP LOCKED;

-- name: OutboxMarkDispatched :exec
UPDATE outbox_events SET dispatched_at = now() WHERE id = ANY(@ids::uuid[]);

-- name: DeliveryQueue :exec
-- Opens the ledger row that the status page reads as "queued".
INSERT INTO deliveries (application_id)
SELECT unnest(@application_ids::uuid[])
ON CONFLICT (application_id) DO NOTHING;

-- name: WorkerHeartbeat :exec
INSERT INTO worker_heartbeats (worker_id, hostname, pid, started_at, last_seen_at)
VALUES (@worker_id, @hostname, @pid, @started_at, now())
ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = now();

-- name: WorkerGone :exec
DELETE FROM worker_heartbeats WHERE worker_id = @worker_id;

-- name: WorkersSeenSince :many
SELECT worker_id, hostname, pid, started_at, last_seen_at
FROM worker_heartbeats
WHERE last_seen_at >= now() - @within::interval
ORDER BY started_at;

-- name: WorkerHeartbeatsPrune :exec
-- Workers that vanished without saying goodbye (SIGKILL) are forgotten
-- after a day.
DELETE FROM worker_heartbeats WHERE last_seen_at < now() - interval '1 day';

-- name: OutboxBacklog :one
SELECT count(*)::bigint AS undispatched,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds
FROM outbox_events
WHERE dispatched_at IS NULL AND quarantined_at IS NULL;

-- name: DeliveryCounts :many
SELECT state, count(*)::bigint AS deliveries,
       count(*) FILTER (WHERE state = 'failed' AND acknowledged_at IS NULL)::bigint AS unacknowledged
FROM deliveries
GROUP BY state
ORDER BY state;

-- name: DeliveriesFailed :many
SELECT application_id, attempts, last_error_class, last_smtp_code, last_attempt_at, acknowledged_at
FROM deliveries
WHERE state = 'failed'
ORDER BY last_attempt_at NULLS FIRST, application_id;

-- name: DeliveriesAcknowledge :many
UPDATE deliveries SET acknowledged_at = now()
WHERE state = 'failed' AND acknowledged_at IS NULL
  AND (cardinality(@application_ids::uuid[]) = 0 OR application_id = ANY(@application_ids::uuid[]))
RETURNING application_id;

-- name: DeliveriesRequeue :many
-- Puts failed deliveries back to 'queued' for a retry. Only 'failed' rows
-- move: a delivery that was sent is never queued again.
UPDATE deliveries
SET state = 'queued', acknowledged_at = NULL, updated_at = now()
WHERE state = 'failed'
  AND (cardinality(@application_ids::uuid[]) = 0 OR application_id = ANY(@application_ids::uuid[]))
RETURNING application_id;

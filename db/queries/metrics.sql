-- Bounded counts for the metrics collectors (postgres.Gauges). Each reads
-- an index and stops at @cap rows, so a scrape costs the same with a million
-- rows of history as with none; a count at the cap means "at least".

-- name: MetricsOutboxBacklog :one
-- Through outbox_events_undispatched_idx: the oldest event is the index's
-- first entry, the count stops at the cap.
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM outbox_events
            WHERE dispatched_at IS NULL AND quarantined_at IS NULL
            LIMIT @cap::bigint) w)::bigint AS undispatched,
       coalesce(extract(epoch FROM now() - (
            SELECT created_at FROM outbox_events
            WHERE dispatched_at IS NULL AND quarantined_at IS NULL
            ORDER BY created_at, id LIMIT 1)), 0)::float8 AS oldest_seconds;

-- name: MetricsOutboxQuarantined :one
-- Through outbox_events_quarantined_idx.
SELECT count(*)::bigint AS quarantined FROM (
    SELECT 1 FROM outbox_events WHERE quarantined_at IS NOT NULL LIMIT @cap::bigint) q;

-- name: MetricsDeliveryStates :many
-- Every state but 'sent', through the partial index deliveries_state_idx
-- (state <> 'sent'): sent rows are the history that grows without bound,
-- and their rate is intake_email_sends_total{result="sent"}.
SELECT s.state::text AS state, count(d.state)::bigint AS deliveries
FROM unnest(ARRAY['queued', 'sending', 'retrying', 'failed']::text[]) AS s(state)
LEFT JOIN LATERAL (
    SELECT state FROM deliveries WHERE deliveries.state = s.state AND deliveries.state <> 'sent' LIMIT @cap::bigint
) d ON true
GROUP BY s.state
ORDER BY s.state;

-- name: ApplicationStatusGet :one
-- The caller has checked the status token (it is derived, not stored).
SELECT a.id, a.received_at,
       coalesce(d.state, 'queued')::text AS delivery_state,
       coalesce(d.attempts, 0)::integer AS delivery_attempts,
       d.last_attempt_at
FROM applications a
LEFT JOIN deliveries d ON d.application_id = a.id
WHERE a.id = @id;

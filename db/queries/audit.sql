-- name: AuditInsert :exec
INSERT INTO audit_log (actor, action, target_type, target_id, outcome, request_id, detail)
VALUES (@actor, @action, @target_type, @target_id, @outcome, @request_id, @detail);

-- name: AuditList :many
-- Newest first by id, from before_id (0: from the newest); empty filters
-- match everything.
SELECT id, at, actor, action, target_type, target_id, outcome, request_id, detail
FROM audit_log
WHERE (@before_id::bigint = 0 OR id < @before_id::bigint)
  AND (@actor::text = '' OR actor = @actor::text)
  AND (@action::text = '' OR action = @action::text)
  AND (@target::text = '' OR target_id = @target::text)
  AND (sqlc.narg(since)::timestamptz IS NULL OR at >= sqlc.narg(since)::timestamptz)
  AND (sqlc.narg(until)::timestamptz IS NULL OR at < sqlc.narg(until)::timestamptz)
ORDER BY id DESC
LIMIT @max_rows;

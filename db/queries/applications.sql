-- name: ApplicationStatusGet :one
-- A wrong token finds nothing, exactly like an unknown id.
SELECT id, received_at
FROM applications
WHERE id = @id AND status_token_hash = @status_token_hash;

-- name: TokenInsert :one
INSERT INTO admin_tokens (id, name, role, token_hash, created_by, expires_at)
VALUES (@id, @name, @role, @token_hash, @created_by, @expires_at)
RETURNING *;

-- name: TokenGetValidByHash :one
-- A revoked or expired token is not found: every replica asks the database
-- on every request, so a revocation holds everywhere at its commit.
SELECT * FROM admin_tokens
WHERE token_hash = @token_hash
  AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now());

-- name: TokenLockValid :one
-- Taken at the start of an audited admin transaction: the shared row lock
-- makes a concurrent revocation wait for this transaction, and a revocation
-- that committed first makes the token not found, so nothing commits under
-- a token after its revocation has.
SELECT id FROM admin_tokens
WHERE id = @id
  AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
FOR SHARE;

-- name: TokenTouch :exec
-- At most one write a minute per token, so authenticating stays a read.
UPDATE admin_tokens SET last_used_at = now()
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: TokenList :many
SELECT * FROM admin_tokens
ORDER BY created_at, id;

-- name: TokenRevoke :one
-- Revoking twice keeps the first time.
UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, now())
WHERE id = @id
RETURNING *;

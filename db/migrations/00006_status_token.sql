-- +goose Up

-- Status tokens are now derived from the application id under
-- INTAKE_STATUS_SECRET (internal/statustoken), so neither a token nor its
-- hash is stored. Tokens handed out before this migration were random and
-- only their hash could check them: those links stop working (a replay of
-- their idempotency key answers the new link).
--
-- The column is left in place, nullable and unused, rather than dropped:
-- API replicas of the previous version, still serving during a rolling
-- upgrade, insert and read it, and would fail every submit without it. A
-- later migration drops it once no such replica can be running.
ALTER TABLE applications ALTER COLUMN status_token_hash DROP NOT NULL;

-- The stored 201 bodies held those tokens in plain text inside status_url;
-- the API now stores the body without status_url and rebuilds it from the
-- id for every answer, first or replayed.
UPDATE idempotency_keys
SET response_body = convert_to((convert_from(response_body, 'UTF8')::jsonb - 'status_url')::text, 'UTF8')
WHERE response_body IS NOT NULL
  AND convert_from(response_body, 'UTF8')::jsonb ? 'status_url';

-- +goose Down
-- Applications stored meanwhile have no hash, so the old code answers 404
-- for their status; the column cannot be NOT NULL again.

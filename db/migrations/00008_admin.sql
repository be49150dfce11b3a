-- +goose Up

-- Admin API tokens. Only the SHA-256 of a token is kept: the token is 256
-- random bits, so a fast hash is as hard to reverse as a slow one, and the
-- lookup by hash is a single index probe (no per-token salt to try).
CREATE TABLE admin_tokens (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text        NOT NULL CHECK (role IN ('viewer', 'admin')),
    token_hash   bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_by   text        NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz CHECK (expires_at > created_at),
    -- Written at most about once a minute per token, so a read stays a read.
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- The audit log: who did what to which target, when, and how it ended.
-- Never personal data: targets are ids and slugs, actors are token ids or
-- operating-system user names.
CREATE TABLE audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action      text        NOT NULL CHECK (action ~ '^[a-z]+(\.[a-z_]+)+$' AND length(action) <= 100),
    target_type text        NOT NULL DEFAULT '' CHECK (length(target_type) <= 50),
    target_id   text        NOT NULL DEFAULT '' CHECK (length(target_id) <= 200),
    outcome     text        NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    request_id  text        NOT NULL DEFAULT '' CHECK (length(request_id) <= 64)
);

CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- Append-only: the database itself refuses to change or remove a row,
-- whoever asks (TRUNCATE included), so the log cannot be rewritten through
-- the application's own connection.
-- +goose StatementBegin
CREATE FUNCTION intake_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION intake_audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION intake_audit_log_append_only();

-- The admin list pages newest first by (received_at, id).
CREATE INDEX applications_received_idx ON applications (received_at DESC, id DESC);
CREATE INDEX applications_posting_received_idx ON applications (posting_id, received_at DESC, id DESC);

-- +goose Down
DROP INDEX applications_posting_received_idx;
DROP INDEX applications_received_idx;
DROP TABLE audit_log;
DROP FUNCTION intake_audit_log_append_only;
DROP TABLE admin_tokens;

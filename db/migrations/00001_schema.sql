-- +goose Up

-- A posting is a job opening. Slugs appear in URLs, so they are kept to a
-- lower-case, dash-separated form that needs no escaping.
CREATE TABLE postings (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text        NOT NULL UNIQUE
                            CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 20000),
    status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Links are limited in count and in length; a CHECK constraint cannot loop
-- over an array, so an immutable function does it.
-- +goose StatementBegin
CREATE FUNCTION intake_links_valid(links text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN cardinality(links) <= 5
   AND NOT EXISTS (SELECT 1 FROM unnest(links) AS l WHERE l IS NULL OR length(l) NOT BETWEEN 1 AND 2048);
-- +goose StatementEnd

CREATE TABLE applications (
    id                uuid        PRIMARY KEY,
    posting_id        bigint      NOT NULL REFERENCES postings (id),
    full_name         text        NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    -- email is what the applicant typed (trimmed), used to send mail;
    -- email_normalized is what uniqueness is decided on.
    email             text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    email_normalized  text        NOT NULL CHECK (length(email_normalized) BETWEEN 3 AND 254
                                                  AND email_normalized = lower(btrim(email))),
    phone             text        CHECK (length(phone) BETWEEN 1 AND 40),
    cover_letter      text        CHECK (length(cover_letter) BETWEEN 1 AND 10000),
    links             text[]      NOT NULL DEFAULT '{}' CHECK (intake_links_valid(links)),
    received_at       timestamptz NOT NULL,
    -- SHA-256 of the status token; the token itself is only ever in the
    -- applicant's hands (and in the stored idempotent response).
    status_token_hash bytea       NOT NULL CHECK (length(status_token_hash) = 32),
    -- Invariant 2: at most one application per posting and normalised email.
    CONSTRAINT applications_posting_email_key UNIQUE (posting_id, email_normalized)
);

-- The transactional outbox. Payloads carry ids only, never personal data.
CREATE TABLE outbox_events (
    id            uuid        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('application.submitted')),
    aggregate_id  uuid        NOT NULL REFERENCES applications (id),
    payload       jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    CONSTRAINT outbox_events_aggregate_kind_key UNIQUE (aggregate_id, kind)
);

-- The relay claims the oldest undispatched events; this index holds only
-- those, so it stays small however long the table grows.
CREATE INDEX outbox_events_undispatched_idx ON outbox_events (created_at, id)
    WHERE dispatched_at IS NULL;

-- Invariant 1, enforced by the database: an application commits only together
-- with its application.submitted event (the foreign key above covers the other
-- direction). The check runs at commit, after both inserts.
-- +goose StatementBegin
CREATE FUNCTION intake_application_has_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM outbox_events
        WHERE aggregate_id = NEW.id AND kind = 'application.submitted'
    ) THEN
        RAISE EXCEPTION 'application % has no application.submitted event', NEW.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER applications_have_event
    AFTER INSERT ON applications
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION intake_application_has_event();

-- Idempotency keys. A key is claimed ('processing') and completed with its
-- response in the same transaction as the application, so a committed key
-- always points at an application and its stored response.
CREATE TABLE idempotency_keys (
    key             text        PRIMARY KEY
                                CHECK (length(key) BETWEEN 1 AND 255 AND key ~ '^[\x20-\x7e]+$'),
    -- SHA-256 of the request (route and decoded body): the same key with a
    -- different request is refused.
    fingerprint     bytea       NOT NULL CHECK (length(fingerprint) = 32),
    state           text        NOT NULL CHECK (state IN ('processing', 'completed')),
    application_id  uuid        REFERENCES applications (id),
    response_status smallint    CHECK (response_status BETWEEN 200 AND 599),
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_lifetime CHECK (expires_at >= created_at + interval '24 hours'),
    CONSTRAINT idempotency_keys_completed CHECK (
        state = 'processing'
        OR (application_id IS NOT NULL AND response_status IS NOT NULL AND response_body IS NOT NULL)
    )
);

CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_application_id_idx ON idempotency_keys (application_id);

-- A key must never commit half-done: 'processing' exists only inside the
-- claiming transaction.
-- +goose StatementBegin
CREATE FUNCTION intake_idempotency_key_completed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM idempotency_keys WHERE key = NEW.key AND state <> 'completed') THEN
        RAISE EXCEPTION 'idempotency key left in state processing'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER idempotency_keys_complete_at_commit
    AFTER INSERT ON idempotency_keys
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION intake_idempotency_key_completed();

-- +goose Down
DROP TABLE idempotency_keys;
DROP FUNCTION intake_idempotency_key_completed;
DROP TABLE outbox_events;
DROP TABLE applications;
DROP FUNCTION intake_application_has_event;
DROP FUNCTION intake_links_valid;
DROP TABLE postings;

-- +goose Up

-- The delivery ledger: one row per application's confirmation email. It
-- never holds the address; error details are a class and an SMTP code.
CREATE TABLE deliveries (
    application_id   uuid        PRIMARY KEY REFERENCES applications (id),
    state            text        NOT NULL DEFAULT 'queued'
                                 CHECK (state IN ('queued', 'sending', 'sent', 'retrying', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at  timestamptz,
    last_error_class text        CHECK (last_error_class IN ('temporary', 'permanent', 'exhausted', 'gone')),
    last_smtp_code   smallint    CHECK (last_smtp_code BETWEEN 200 AND 599),
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_sent_has_time CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);

CREATE INDEX deliveries_state_idx ON deliveries (state) WHERE state <> 'sent';

-- The default analytics sink. The primary key on the event id is the
-- deduplication: a job that runs twice records once.
CREATE TABLE analytics_events (
    event_id       uuid        PRIMARY KEY,
    kind           text        NOT NULL,
    application_id uuid        NOT NULL,
    posting_slug   text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE analytics_events;
DROP TABLE deliveries;

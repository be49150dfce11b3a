-- +goose Up

-- An event that cannot become River jobs (its payload does not decode, or
-- the job insert refuses it) is quarantined: kept, with the time and a
-- short error (a class and message, never personal data), and left out of
-- the relay's claim until an operator retries it (intakectl outbox retry).
ALTER TABLE outbox_events
    ADD COLUMN quarantined_at   timestamptz,
    ADD COLUMN quarantine_error text CHECK (length(quarantine_error) BETWEEN 1 AND 500),
    ADD CONSTRAINT outbox_events_quarantine_complete
        CHECK ((quarantined_at IS NULL) = (quarantine_error IS NULL)),
    ADD CONSTRAINT outbox_events_quarantine_undispatched
        CHECK (quarantined_at IS NULL OR dispatched_at IS NULL);

-- The claim's index holds only the events the relay may take, so a
-- quarantined event costs the claim nothing and the claim stays one index
-- range read however many events sit in quarantine.
DROP INDEX outbox_events_undispatched_idx;
CREATE INDEX outbox_events_undispatched_idx ON outbox_events (created_at, id)
    WHERE dispatched_at IS NULL AND quarantined_at IS NULL;

-- intakectl status, /readyz and intakectl outbox list count and list the
-- quarantined events without reading the whole table.
CREATE INDEX outbox_events_quarantined_idx ON outbox_events (quarantined_at, id)
    WHERE quarantined_at IS NOT NULL;

-- +goose Down
DROP INDEX outbox_events_quarantined_idx;
DROP INDEX outbox_events_undispatched_idx;
CREATE INDEX outbox_events_undispatched_idx ON outbox_events (created_at, id)
    WHERE dispatched_at IS NULL;
ALTER TABLE outbox_events
    DROP CONSTRAINT outbox_events_quarantine_undispatched,
    DROP CONSTRAINT outbox_events_quarantine_complete,
    DROP COLUMN quarantine_error,
    DROP COLUMN quarantined_at;

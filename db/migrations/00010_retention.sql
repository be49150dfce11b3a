-- +goose Up

-- Retention deletes dispatched events by age, a batch at a time; this index
-- holds only dispatched events, so each batch is one short range read from
-- the oldest end and never scans the undispatched ones.
CREATE INDEX outbox_events_dispatched_idx ON outbox_events (dispatched_at)
    WHERE dispatched_at IS NOT NULL;

-- The reconciler re-enqueues a delivery's confirmation job once: when it
-- did is kept here, so it never loops, and the abandoned-delivery check
-- ends only a delivery that was given that second chance already.
ALTER TABLE deliveries ADD COLUMN reconciled_at timestamptz;

-- intakectl status counts the reconciled deliveries without reading the
-- ledger.
CREATE INDEX deliveries_reconciled_idx ON deliveries (reconciled_at)
    WHERE reconciled_at IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_reconciled_idx;
ALTER TABLE deliveries DROP COLUMN reconciled_at;
DROP INDEX outbox_events_dispatched_idx;

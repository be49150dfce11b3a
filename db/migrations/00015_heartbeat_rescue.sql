-- +goose Up

-- The worker that owns a delivery's lease. Its heartbeat renews the leases
-- it owns (lease_expires_at moves on by INTAKE_EMAIL_LEASE at every beat),
-- so a lease is short while its worker lives and lapses soon after the
-- worker stops beating: the rescued run of a dead worker's job finds it
-- over. NULL: an attempt taken without a heartbeat (its lease is its whole
-- life, never renewed).
ALTER TABLE deliveries ADD COLUMN leased_by text;
CREATE INDEX deliveries_leased_by_idx ON deliveries (leased_by) WHERE state = 'sending';

-- +goose Down
DROP INDEX deliveries_leased_by_idx;
ALTER TABLE deliveries DROP COLUMN leased_by;

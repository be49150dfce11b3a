-- +goose Up

-- Erasure (intakectl applications erase, DELETE /api/v1/admin/applications/
-- {id}, POST /api/v1/admin/erasures) overwrites an application's personal
-- fields with placeholders and keeps the skeleton (id, posting, received_at)
-- with the time it was erased, so counts stay right. The placeholders
-- satisfy every CHECK on the table, and the normalised email becomes
-- erased+<id>@invalid, unique per application, so the UNIQUE (posting,
-- email_normalized) of invariant 2 never collides on them and no longer
-- holds the applicant's address: the person may apply again.
ALTER TABLE applications ADD COLUMN erased_at timestamptz;

-- An erased application's unsent confirmation is 'cancelled' with the
-- class 'erased': no attempt may start on it (DeliveryAttemptStart takes
-- only queued, retrying and sending rows).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'retrying', 'failed', 'cancelled'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_last_error_class_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_last_error_class_check
    CHECK (last_error_class IN ('temporary', 'permanent', 'exhausted', 'gone', 'abandoned', 'erased'));

-- A short note on an audit row: the operator's reason for an erasure, the
-- number of applications a by-email erasure erased. Never personal data:
-- the by-email erasure records the count, not the address.
ALTER TABLE audit_log ADD COLUMN detail text NOT NULL DEFAULT '' CHECK (length(detail) <= 500);

-- +goose Down
ALTER TABLE audit_log DROP COLUMN detail;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_last_error_class_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_last_error_class_check
    CHECK (last_error_class IN ('temporary', 'permanent', 'exhausted', 'gone', 'abandoned'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'retrying', 'failed'));
ALTER TABLE applications DROP COLUMN erased_at;

-- +goose Up

-- The fence on every send. An attempt owns its delivery from the moment it
-- counts itself ('sending', attempts + 1) until lease_expires_at: no other
-- attempt may start before then, and only the attempt whose number is in
-- attempts may record the outcome. The worker's send ends before the lease
-- does (see job.ConfirmationEmailWorker), so two sends never overlap. A
-- lease left on a row that is no longer 'sending' means nothing (no
-- constraint ties them: a worker of the previous version, still running
-- during a rolling upgrade, records without clearing it).
ALTER TABLE deliveries ADD COLUMN lease_expires_at timestamptz;

-- 'abandoned': the delivery's job ended (discarded after a worker died on
-- its last attempt, cancelled by an operator, deleted) without recording an
-- outcome; the leader's periodic check says so instead of leaving it
-- 'sending' or 'queued' for ever.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_last_error_class_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_last_error_class_check
    CHECK (last_error_class IN ('temporary', 'permanent', 'exhausted', 'gone', 'abandoned'));

-- +goose Down
ALTER TABLE deliveries DROP CONSTRAINT deliveries_last_error_class_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_last_error_class_check
    CHECK (last_error_class IN ('temporary', 'permanent', 'exhausted', 'gone'));
ALTER TABLE deliveries DROP COLUMN lease_expires_at;

-- Cancels the confirmation jobs of an erased application ($1) that have not
-- finished, as River's own JobCancel does (riverpgxv5 v0.51.2, river_job.sql):
-- a job that is not running is cancelled and finalized now; a running one
-- keeps its state for its worker to end (it finds the delivery cancelled),
-- and cancel_attempted_at tells River's rescuer not to run it again. It
-- reads River's job table, which sqlc does not see, so it lives here.
UPDATE river_job
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN state = 'running' THEN finalized_at ELSE now() END,
    metadata = jsonb_set(metadata, '{cancel_attempted_at}'::text[], to_jsonb(now()), true)
WHERE kind = 'confirmation_email'
  AND args @> jsonb_build_object('application_id', $1::text)
  AND state NOT IN ('cancelled', 'completed', 'discarded')
  AND finalized_at IS NULL;

-- The reconciler (job.ReconcilerWorker): deliveries whose confirmation
-- should be on its way but that no job can move any more (still queued,
-- retrying, or sending with its lease over; no confirmation job available,
-- pending, retryable, running or scheduled: it was discarded after its
-- worker died on the last attempt, cancelled, deleted, or never inserted)
-- and that it never reconciled before. It marks them reconciled, once,
-- and its caller inserts their jobs in the same transaction. updated_at
-- moves too, so the abandoned-delivery check, whose quiet margin counts
-- from it, cannot end a row in the instant its new job commits.
-- $1: how long a row must have been left alone; $2: the most rows per run.
-- It reads River's job table, which sqlc does not see, so it lives here.
WITH stuck AS (
    SELECT d.application_id
    FROM deliveries d
    WHERE d.state IN ('queued', 'sending', 'retrying')
      AND d.reconciled_at IS NULL
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())
      AND d.updated_at <= now() - $1::interval
      AND NOT EXISTS (
          SELECT 1 FROM river_job j
          WHERE j.kind = 'confirmation_email'
            AND j.args @> jsonb_build_object('application_id', d.application_id::text)
            AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
      )
    ORDER BY d.updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
SET reconciled_at = now(), updated_at = now()
FROM stuck
WHERE d.application_id = stuck.application_id
RETURNING d.application_id;

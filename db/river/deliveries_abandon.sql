-- The leader's check (job.AbandonedDeliveriesWorker) for ledger rows only a
-- worker could have moved on: still queued, sending or retrying, with no live lease and no confirmation
-- job left that could run (it was discarded after its worker died on the
-- last attempt, cancelled, or deleted). The reconciler gives each such row
-- one new job first (reconciled_at); only a row it reconciled already, and
-- whose new job ended the same way, ends here 'failed' ('abandoned'),
-- which intakectl status reports and intakectl deliveries retry requeues.
-- River's GIN index on args finds each application's jobs. It reads River's
-- job table, which sqlc does not see, so it lives here.
UPDATE deliveries d
SET state = 'failed', last_error_class = 'abandoned', lease_expires_at = NULL, updated_at = now()
WHERE d.state IN ('queued', 'sending', 'retrying')
  AND d.reconciled_at IS NOT NULL
  AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())
  AND d.updated_at <= now() - $1::interval
  AND NOT EXISTS (
      SELECT 1 FROM river_job j
      WHERE j.kind = 'confirmation_email'
        AND j.args @> jsonb_build_object('application_id', d.application_id::text)
        AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
  )
RETURNING d.application_id;

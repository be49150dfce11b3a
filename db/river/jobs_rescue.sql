-- Rescues the running jobs of dead workers at once, as River's own rescuer
-- does after INTAKE_RESCUE_AFTER (riverqueue/river v0.51.2,
-- internal/maintenance/job_rescuer.go), but decided from heartbeats. A
-- worker is dead when its heartbeat row (worker_heartbeats, by the
-- database's clock) is older than $1; a job whose last worker has no
-- heartbeat row at all (a worker of an older version, one stopped cleanly)
-- is left to River's rescuer. Like River's: a job whose erasure asked to
-- cancel it (cancel_attempted_at) ends cancelled; one that died on its last
-- attempt is discarded (the dead run counts as an attempt, so a job that
-- kills its worker every time runs out of attempts instead of looping); any
-- other is available again now rather than after a retry's backoff: its
-- worker died, the job did not fail. It keeps its scheduled_at, so it goes
-- back to its place at the head of its queue (River fetches oldest
-- scheduled first), not behind a backlog. The rescue is recorded as the job's
-- error. SKIP LOCKED: two workers rescuing at once each take different
-- jobs, and a job being completed right now is left alone. Returns each
-- rescued job's id, kind, new state and dead worker.
WITH dead AS (
    SELECT j.id, j.attempted_by[cardinality(j.attempted_by)] AS worker_id
    FROM river_job j
    WHERE j.state = 'running'
      AND EXISTS (
          SELECT 1 FROM worker_heartbeats h
          WHERE h.worker_id = j.attempted_by[cardinality(j.attempted_by)]
            AND h.last_seen_at < now() - $1::interval)
    FOR UPDATE OF j SKIP LOCKED
), decided AS (
    SELECT dead.id, dead.worker_id,
           CASE WHEN j.metadata ? 'cancel_attempted_at' THEN 'cancelled'
                WHEN j.attempt >= j.max_attempts THEN 'discarded'
                ELSE 'available' END::river_job_state AS state
    FROM dead JOIN river_job j ON j.id = dead.id
)
UPDATE river_job j
SET state = decided.state,
    finalized_at = CASE WHEN decided.state = 'available' THEN NULL ELSE now() END,
    errors = array_append(coalesce(j.errors, '{}'), jsonb_build_object(
        'at', now(),
        'attempt', j.attempt,
        'error', 'rescued from dead worker ' || decided.worker_id || ': its heartbeat stopped',
        'trace', ''))
FROM decided
WHERE j.id = decided.id
RETURNING j.id, j.kind, j.state::text, decided.worker_id;

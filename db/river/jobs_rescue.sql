-- Rescues the running jobs of dead workers at once, as River's own rescuer
-- does after INTAKE_RESCUE_AFTER (riverqueue/river v0.51.2,
-- internal/maintenance/job_rescuer.go), but decided from heartbeats. A
-- worker is dead when its heartbeat row (worker_heartbeats, by the
-- database's clock) is older than $1; a job whose last worker has no
-- heartbeat row at all (a worker of an older version, one stopped cleanly)
-- is left to River's rescuer.
--
-- The dead worker's row is finalized, never made available again: a
-- worker called dead may still be alive (a partition, a stalled process),
-- and River's completer sets a job's state wherever it is still running
-- (JobSetStateIfRunningMany checks nothing else), so its late completion,
-- cancel or snooze would land on the run another worker started. On a
-- finalized row it does nothing. Like River's rescuer: a job whose erasure
-- asked to cancel it (cancel_attempted_at) ends cancelled; one that died on
-- its last attempt is discarded (the dead run counts as an attempt, so a
-- job that kills its worker every time runs out of attempts instead of
-- looping). Any other is discarded too, and a new job takes its place
-- (db/river/jobs_rescue_insert.sql, the next statement: the unique index
-- lets the new row in only once this one left the unique states); its id
-- is taken here and kept in the old row's metadata (rescued_as). The
-- rescue is recorded as the job's error. SKIP LOCKED: two workers rescuing
-- at once each take different jobs, and a job being completed right now is
-- left alone. Returns each rescued job's id, kind, state (available: a new
-- job runs it again), dead worker and new job's id (NULL: none).
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
), numbered AS (
    SELECT decided.*,
           CASE WHEN decided.state = 'available' THEN nextval('river_job_id_seq') END AS new_id
    FROM decided
)
UPDATE river_job j
SET state = CASE WHEN numbered.state = 'cancelled' THEN 'cancelled' ELSE 'discarded' END::river_job_state,
    finalized_at = now(),
    metadata = CASE WHEN numbered.new_id IS NULL THEN j.metadata
                    ELSE j.metadata || jsonb_build_object('rescued_as', numbered.new_id) END,
    errors = array_append(coalesce(j.errors, '{}'), jsonb_build_object(
        'at', now(),
        'attempt', j.attempt,
        'error', 'rescued from dead worker ' || numbered.worker_id || ': its heartbeat stopped',
        'trace', ''))
FROM numbered
WHERE j.id = numbered.id
RETURNING j.id, j.kind, numbered.state::text, numbered.worker_id, numbered.new_id;

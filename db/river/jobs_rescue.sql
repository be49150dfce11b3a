-- Makes the running jobs of dead workers available again at once. A worker
-- is dead when its heartbeat row (worker_heartbeats, by the database's
-- clock) is older than $1; a job whose last worker has no heartbeat row at
-- all (a worker of an older version, one stopped cleanly) is left to
-- River's own rescuer (INTAKE_RESCUE_AFTER). The attempt River counted when
-- the dead worker fetched the job is given back (attempt - 1): the job did
-- not fail, its worker died, and River counts it again at the next fetch.
-- The rescue is recorded as the job's error, as River's rescuer does. SKIP
-- LOCKED: two workers rescuing at once each take different jobs, and a job
-- being completed right now is left alone. Returns the rescued jobs' kinds
-- and their dead workers.
WITH dead AS (
    SELECT j.id, j.attempted_by[cardinality(j.attempted_by)] AS worker_id
    FROM river_job j
    WHERE j.state = 'running'
      AND EXISTS (
          SELECT 1 FROM worker_heartbeats h
          WHERE h.worker_id = j.attempted_by[cardinality(j.attempted_by)]
            AND h.last_seen_at < now() - $1::interval)
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE river_job j
SET state = 'available',
    attempt = greatest(j.attempt - 1, 0),
    scheduled_at = now(),
    errors = array_append(coalesce(j.errors, '{}'), jsonb_build_object(
        'at', now(),
        'attempt', j.attempt,
        'error', 'rescued from dead worker ' || dead.worker_id || ': its heartbeat stopped',
        'trace', ''))
FROM dead
WHERE j.id = dead.id
RETURNING j.id, j.kind, dead.worker_id;

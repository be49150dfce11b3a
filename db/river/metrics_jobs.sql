-- River's live jobs by kind and state for the worker's metrics ($1: the cap
-- per state). Each state is read in the order of River's fetch index
-- (state first), which makes it that index's range and stops it at the
-- cap; completed, cancelled and discarded jobs are history (River's cleaner
-- prunes them) and are not counted.
SELECT j.kind, s.state::text AS state, count(*)::bigint AS jobs
FROM unnest(ARRAY['available', 'pending', 'retryable', 'running', 'scheduled']::river_job_state[]) AS s(state)
CROSS JOIN LATERAL (
    SELECT kind FROM river_job WHERE river_job.state = s.state
    ORDER BY river_job.state, queue, priority, scheduled_at, id
    LIMIT $1
) j
GROUP BY j.kind, s.state
ORDER BY j.kind, s.state;

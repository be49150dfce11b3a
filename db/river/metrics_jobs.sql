-- River's live jobs by kind and state for the worker's metrics ($1: the cap
-- per state). Each state is read through River's fetch index (state first)
-- and stops at the cap; completed, cancelled and discarded jobs are history
-- (River's cleaner prunes them) and are not counted.
SELECT j.kind, s.state, count(*)::bigint AS jobs
FROM unnest(ARRAY['available', 'pending', 'retryable', 'running', 'scheduled']::text[]) AS s(state)
CROSS JOIN LATERAL (
    SELECT kind FROM river_job WHERE river_job.state = s.state::river_job_state LIMIT $1
) j
GROUP BY j.kind, s.state
ORDER BY j.kind, s.state;

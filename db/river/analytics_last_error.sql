-- The error of the analytics job that failed last, among the 100 retryable
-- ones scheduled furthest out (a job's next attempt is its last failure
-- plus its backoff, so the newest failures are there). It reads at most 100
-- rows, walking river_job_prioritized_fetching_index (state, queue,
-- priority, scheduled_at, id) backwards, however long the backlog grows.
-- Empty when no analytics job is retrying.
SELECT coalesce((
    SELECT errors[array_upper(errors, 1)]->>'error'
    FROM (SELECT attempted_at, errors
          FROM river_job
          WHERE state = 'retryable' AND queue = 'analytics'
          ORDER BY priority DESC, scheduled_at DESC, id DESC
          LIMIT 100) AS latest
    ORDER BY attempted_at DESC NULLS LAST
    LIMIT 1), '') AS last_error;

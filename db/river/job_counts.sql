-- River's jobs by kind and state, with the age of the oldest job that is
-- waiting to run (available and due) and of the oldest running one. River's
-- tables are River's schema, not ours, so sqlc does not know them; this
-- query runs through pgx directly (postgres.Store.Status).
SELECT kind,
       state::text AS state,
       count(*)::bigint AS jobs,
       coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE state = 'available' AND scheduled_at <= now())), 0)::float8 AS oldest_available_seconds,
       coalesce(extract(epoch FROM now() - min(attempted_at) FILTER (WHERE state = 'running')), 0)::float8 AS oldest_running_seconds
FROM river_job
GROUP BY kind, state
ORDER BY kind, state;

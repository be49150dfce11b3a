-- How long the next job of each queue has waited ($1: the queues): River
-- fetches by (state, queue, priority, scheduled_at), so the job it would
-- run next is the first entry of its fetch index for that queue.
SELECT q.queue,
       coalesce(extract(epoch FROM now() - (
           SELECT scheduled_at FROM river_job
           WHERE state = 'available' AND queue = q.queue AND scheduled_at <= now()
           ORDER BY priority, scheduled_at, id LIMIT 1)), 0)::float8 AS oldest_seconds
FROM unnest($1::text[]) AS q(queue);

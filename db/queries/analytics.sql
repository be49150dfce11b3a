-- name: AnalyticsEventRecord :execrows
-- Zero rows affected means the event was already recorded.
INSERT INTO analytics_events (event_id, kind, application_id, posting_slug, occurred_at)
VALUES (@event_id, @kind, @application_id, @posting_slug, @occurred_at)
ON CONFLICT (event_id) DO NOTHING;

-- name: AnalyticsEventRecordMany :many
-- The Postgres sink's records of one relay round, written in the round's
-- transaction: one statement for the whole batch (the arrays are of one
-- length, so the unnests run in step). It returns the occurrence
-- time of each record it wrote; an event recorded already (by an analytics
-- job that an older worker's relay inserted for it) is skipped, so each
-- event still has exactly one record.
INSERT INTO analytics_events (event_id, kind, application_id, posting_slug, occurred_at)
SELECT unnest(@event_ids::uuid[]), unnest(@kinds::text[]), unnest(@application_ids::uuid[]),
       unnest(@posting_slugs::text[]), unnest(@occurred_ats::timestamptz[])
ON CONFLICT (event_id) DO NOTHING
RETURNING occurred_at;

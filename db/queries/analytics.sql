-- name: AnalyticsEventRecord :execrows
-- Zero rows affected means the event was already recorded.
INSERT INTO analytics_events (event_id, kind, application_id, posting_slug, occurred_at)
VALUES (@event_id, @kind, @application_id, @posting_slug, @occurred_at)
ON CONFLICT (event_id) DO NOTHING;

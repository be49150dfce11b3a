-- The weekly report (job.WeeklyReportWorker, intakectl report, GET
-- /api/v1/admin/reports/{week}).

-- name: ReportFigures :many
-- One row per posting that existed before the week's end: the applications
-- received in [week_start, week_end) with their confirmations' ledger
-- state and submit-to-acceptance times, the analytics records of events
-- that occurred in the week, and the erasures made in it. Counts only. The
-- percentiles are over the sent confirmations; 0 when none was (sent says
-- so).
SELECT p.slug,
       count(a.id)::int AS received,
       count(*) FILTER (WHERE d.state = 'sent')::int AS sent,
       count(*) FILTER (WHERE d.state = 'retrying')::int AS retrying,
       count(*) FILTER (WHERE d.state = 'failed')::int AS failed,
       count(a.id) FILTER (WHERE d.state IS NULL OR d.state IN ('queued', 'sending'))::int AS pending,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.sent_at - a.received_at)::float8), 0)::float8 AS accepted_p50,
       coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM d.sent_at - a.received_at)::float8), 0)::float8 AS accepted_p95,
       (SELECT count(*) FROM analytics_events ae
        WHERE ae.posting_slug = p.slug
          AND ae.occurred_at >= @week_start::timestamptz AND ae.occurred_at < @week_end::timestamptz)::int AS analytics_recorded,
       (SELECT count(*) FROM applications e
        WHERE e.posting_id = p.id
          AND e.erased_at >= @week_start::timestamptz AND e.erased_at < @week_end::timestamptz)::int AS erasures
FROM postings p
LEFT JOIN applications a
       ON a.posting_id = p.id AND a.received_at >= @week_start::timestamptz AND a.received_at < @week_end::timestamptz
LEFT JOIN deliveries d ON d.application_id = a.id
WHERE p.created_at < @week_end::timestamptz
GROUP BY p.id, p.slug
ORDER BY p.slug;

-- name: ReportTotals :one
-- The same figures over every posting (percentiles do not add up, so the
-- totals are read, not summed).
SELECT count(a.id)::int AS received,
       count(*) FILTER (WHERE d.state = 'sent')::int AS sent,
       count(*) FILTER (WHERE d.state = 'retrying')::int AS retrying,
       count(*) FILTER (WHERE d.state = 'failed')::int AS failed,
       count(a.id) FILTER (WHERE d.state IS NULL OR d.state IN ('queued', 'sending'))::int AS pending,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.sent_at - a.received_at)::float8), 0)::float8 AS accepted_p50,
       coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM d.sent_at - a.received_at)::float8), 0)::float8 AS accepted_p95,
       (SELECT count(*) FROM analytics_events ae
        WHERE ae.occurred_at >= @week_start::timestamptz AND ae.occurred_at < @week_end::timestamptz)::int AS analytics_recorded,
       (SELECT count(*) FROM applications e
        WHERE e.erased_at >= @week_start::timestamptz AND e.erased_at < @week_end::timestamptz)::int AS erasures
FROM applications a
LEFT JOIN deliveries d ON d.application_id = a.id
WHERE a.received_at >= @week_start::timestamptz AND a.received_at < @week_end::timestamptz;

-- name: ReportGet :one
SELECT week, built_at, body, emailed_at FROM reports WHERE week = @week;

-- name: ReportInsert :execrows
-- The first build of a week commits; a concurrent or later one (another
-- worker, a rerun after a crash) inserts nothing and reads the stored one.
INSERT INTO reports (week, built_at, body) VALUES (@week, @built_at, @body)
ON CONFLICT (week) DO NOTHING;

-- name: ReportEmailStart :one
-- Starts an attempt at the report's email, in its own committed
-- transaction: it counts the attempt and gives it the lease. No row when
-- the email went already or a live attempt holds the lease.
UPDATE reports
SET email_attempts = email_attempts + 1,
    email_lease_expires_at = now() + @lease::interval
WHERE week = @week
  AND emailed_at IS NULL
  AND (email_lease_expires_at IS NULL OR email_lease_expires_at <= now())
RETURNING email_attempts;

-- name: ReportEmailLeaseGet :one
SELECT emailed_at,
       greatest(0, extract(epoch FROM email_lease_expires_at - now()))::float8 AS lease_left_seconds
FROM reports WHERE week = @week;

-- name: ReportEmailed :execrows
-- Only the attempt that holds the lease records the email as sent.
UPDATE reports
SET emailed_at = now(), email_lease_expires_at = NULL
WHERE week = @week AND email_attempts = @attempt AND emailed_at IS NULL;

-- name: ReportEmailUnsent :execrows
-- The attempt failed: it gives the lease back for the next one.
UPDATE reports
SET email_lease_expires_at = NULL
WHERE week = @week AND email_attempts = @attempt AND emailed_at IS NULL;

-- +goose Up

-- The weekly report (job.WeeklyReportWorker): one row per ISO week, the
-- week as its key, so however many workers build it, one row commits
-- (INSERT ... ON CONFLICT DO NOTHING) and every later run reads that one.
-- body holds counts and slugs only. The email is fenced as the
-- confirmation is: an attempt takes the lease (email_attempts + 1,
-- email_lease_expires_at), and only that attempt may set emailed_at.
CREATE TABLE reports (
    week                   text        PRIMARY KEY CHECK (week ~ '^[0-9]{4}-W[0-9]{2}$'),
    built_at               timestamptz NOT NULL,
    body                   jsonb       NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    emailed_at             timestamptz,
    email_attempts         integer     NOT NULL DEFAULT 0 CHECK (email_attempts >= 0),
    email_lease_expires_at timestamptz
);

-- Application retention (job.ApplicationRetentionWorker) picks the oldest
-- applications not yet erased; this index holds only those.
CREATE INDEX applications_unerased_received_idx ON applications (received_at, id)
    WHERE erased_at IS NULL;

-- The report counts the erasures made during a week.
CREATE INDEX applications_erased_idx ON applications (erased_at)
    WHERE erased_at IS NOT NULL;

-- The report counts the analytics records of events that occurred during a
-- week, per posting.
CREATE INDEX analytics_events_occurred_idx ON analytics_events (occurred_at);

-- +goose Down
DROP INDEX analytics_events_occurred_idx;
DROP INDEX applications_erased_idx;
DROP INDEX applications_unerased_received_idx;
DROP TABLE reports;

-- name: ApplicationStatusGet :one
-- The caller has checked the status token (it is derived, not stored).
SELECT a.id, a.received_at, a.erased_at,
       coalesce(d.state, 'queued')::text AS delivery_state,
       coalesce(d.attempts, 0)::integer AS delivery_attempts,
       d.last_attempt_at
FROM applications a
LEFT JOIN deliveries d ON d.application_id = a.id
WHERE a.id = @id;

-- name: ApplicationsPage :many
-- Newest first by (received_at, id), after the cursor's row; posting_slug
-- empty lists every posting.
SELECT a.id, p.slug AS posting_slug, a.full_name, a.email, a.received_at
FROM applications a
JOIN postings p ON p.id = a.posting_id
WHERE (@posting_slug::text = '' OR p.slug = @posting_slug::text)
  AND (NOT @after::boolean OR (a.received_at, a.id) < (@after_received_at::timestamptz, @after_id::uuid))
ORDER BY a.received_at DESC, a.id DESC
LIMIT @max_rows;

-- name: ApplicationAdminGet :one
-- Everything an admin may read about one application: the applicant's
-- data, the confirmation email's ledger row, and whether analytics has it.
SELECT a.id, p.slug AS posting_slug, a.full_name, a.email, a.phone, a.cover_letter, a.links, a.received_at, a.erased_at,
       a.answers,
       coalesce(d.state, 'queued')::text AS delivery_state,
       coalesce(d.attempts, 0)::integer AS delivery_attempts,
       d.last_attempt_at, d.sent_at, d.last_error_class, d.last_smtp_code,
       ae.recorded_at AS analytics_recorded_at
FROM applications a
JOIN postings p ON p.id = a.posting_id
LEFT JOIN deliveries d ON d.application_id = a.id
LEFT JOIN outbox_events e ON e.aggregate_id = a.id AND e.kind = 'application.submitted'
LEFT JOIN analytics_events ae ON ae.event_id = e.id
WHERE a.id = @id;

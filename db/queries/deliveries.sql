-- name: ConfirmationGet :one
-- Everything the confirmation email needs, with the ledger's state.
SELECT a.id, a.full_name, a.email, a.received_at,
       p.slug AS posting_slug, p.title AS posting_title,
       coalesce(d.state, 'queued')::text AS delivery_state
FROM applications a
JOIN postings p ON p.id = a.posting_id
LEFT JOIN deliveries d ON d.application_id = a.id
WHERE a.id = @application_id;

-- name: DeliveryAttemptStart :one
-- Counts an attempt before talking to the SMTP server, committed on its own,
-- so attempts stay right even when the worker dies mid-send.
INSERT INTO deliveries (application_id, state, attempts, last_attempt_at)
VALUES (@application_id, 'sending', 1, now())
ON CONFLICT (application_id) DO UPDATE
SET state = 'sending',
    attempts = deliveries.attempts + 1,
    last_attempt_at = now(),
    updated_at = now()
WHERE deliveries.state <> 'sent'
RETURNING attempts;

-- name: DeliveryMarkSent :execrows
UPDATE deliveries
SET state = 'sent', sent_at = now(), last_error_class = NULL, last_smtp_code = NULL, updated_at = now()
WHERE application_id = @application_id AND state <> 'sent';

-- name: DeliveryMarkUnsent :execrows
-- Records a failed attempt: 'retrying' (River will try again) or 'failed'.
-- A delivery already sent is never downgraded.
UPDATE deliveries
SET state = @state, last_error_class = @error_class, last_smtp_code = sqlc.narg(smtp_code), updated_at = now()
WHERE application_id = @application_id AND state <> 'sent';

-- name: ApplicationErase :one
-- Overwrites every personal field of one application with placeholders that
-- pass every CHECK of the table (migration 9 says why these), keeps the
-- skeleton, and keeps the first erasure's time when repeated.
UPDATE applications
SET full_name = '(erased)',
    email = 'erased+' || id::text || '@invalid',
    email_normalized = 'erased+' || id::text || '@invalid',
    phone = NULL,
    cover_letter = NULL,
    links = '{}',
    answers = '{}',
    status_token_hash = NULL,
    erased_at = coalesce(erased_at, now())
WHERE id = @id
RETURNING id;

-- name: ApplicationIDsByEmail :many
-- Every application of one normalised address, on every posting, locked
-- for the erasure that follows in the same transaction. NO KEY UPDATE
-- leaves the key-share lock of a concurrent delivery insert (the relay's,
-- an attempt's) free, so neither waits on the other in a cycle.
SELECT id FROM applications
WHERE email_normalized = @email_normalized
ORDER BY id
FOR NO KEY UPDATE;

-- name: IdempotencyKeysDeleteForApplication :exec
-- The stored responses of the submits that made an application.
DELETE FROM idempotency_keys WHERE application_id = @application_id::uuid;

-- name: DeliveryCancelErased :exec
-- Ends an erased application's unsent confirmation: no attempt starts on a
-- cancelled row. Its row lock orders the erasure against
-- DeliveryAttemptStart (see job.ConfirmationEmailWorker). A sent delivery
-- stays sent; an unknown id inserts nothing.
INSERT INTO deliveries (application_id, state, last_error_class)
SELECT id, 'cancelled', 'erased' FROM applications WHERE id = @application_id
ON CONFLICT (application_id) DO UPDATE
SET state = 'cancelled', last_error_class = 'erased', lease_expires_at = NULL, updated_at = now()
WHERE deliveries.state <> 'sent';

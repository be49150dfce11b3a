-- name: DeliveryAttemptStart :one
-- Starts an attempt and returns what its email needs, in one statement
-- committed on its own, so attempts stay right even when the worker dies
-- mid-send and the attempt costs one commit. It takes the delivery's lease
-- and counts the attempt; the new attempts value is the attempt's number:
-- its fencing token. It takes nothing (no row) while another attempt's
-- lease is live, after the email was sent, once the delivery failed or was
-- cancelled, or when the application does not exist: the caller reads
-- which with DeliveryLeaseGet. The upsert decides on the delivery row's
-- latest version, under its lock: an erasure that committed before it
-- (even after this statement's snapshot, from which the application is
-- read) left the row cancelled, so nothing is returned and nothing sent.
-- leased_by, when set, is the worker whose heartbeat renews the lease
-- (DeliveryLeasesRenew).
WITH started AS (
    INSERT INTO deliveries (application_id, state, attempts, last_attempt_at, lease_expires_at, leased_by)
    SELECT app.id, 'sending', 1, now(), now() + @lease::interval, sqlc.narg(leased_by)
    FROM applications app
    WHERE app.id = @application_id
    ON CONFLICT (application_id) DO UPDATE
    SET state = 'sending',
        attempts = deliveries.attempts + 1,
        last_attempt_at = now(),
        lease_expires_at = now() + @lease::interval,
        leased_by = sqlc.narg(leased_by),
        updated_at = now()
    WHERE deliveries.state IN ('queued', 'retrying', 'sending')
      AND (deliveries.lease_expires_at IS NULL OR deliveries.lease_expires_at <= now())
    RETURNING application_id, attempts
)
SELECT s.attempts, a.id, a.full_name, a.email, a.received_at,
       p.slug AS posting_slug, p.title AS posting_title
FROM started s
JOIN applications a ON a.id = s.application_id
JOIN postings p ON p.id = a.posting_id;

-- name: DeliveryAttemptStartMany :many
-- DeliveryAttemptStart for many attempts at once (the store's group
-- commit): one row per attempt taken, named by its application, with the
-- same per-row rules; an attempt it did not take has no row, and its
-- caller reads why with DeliveryLeaseGet. Each application appears at most
-- once (ON CONFLICT DO UPDATE cannot touch a row twice); rows are taken in
-- application order, so two such statements lock shared rows in the same
-- order. lease and leased_by are per attempt; an empty leased_by is none.
WITH req AS (
    SELECT unnest(@application_ids::uuid[]) AS application_id,
           unnest(@leases::interval[]) AS lease,
           nullif(unnest(@leased_by::text[]), '') AS leased_by
), started AS (
    INSERT INTO deliveries (application_id, state, attempts, last_attempt_at, lease_expires_at, leased_by)
    SELECT app.id, 'sending', 1, now(), now() + req.lease, req.leased_by
    FROM req
    JOIN applications app ON app.id = req.application_id
    ORDER BY app.id
    ON CONFLICT (application_id) DO UPDATE
    SET state = 'sending',
        attempts = deliveries.attempts + 1,
        last_attempt_at = now(),
        lease_expires_at = excluded.lease_expires_at,
        leased_by = excluded.leased_by,
        updated_at = now()
    WHERE deliveries.state IN ('queued', 'retrying', 'sending')
      AND (deliveries.lease_expires_at IS NULL OR deliveries.lease_expires_at <= now())
    RETURNING application_id, attempts
)
SELECT s.attempts, a.id, a.full_name, a.email, a.received_at,
       p.slug AS posting_slug, p.title AS posting_title
FROM started s
JOIN applications a ON a.id = s.application_id
JOIN postings p ON p.id = a.posting_id;

-- name: DeliveryLeaseGet :one
-- Why DeliveryAttemptStart took nothing: the state, and how long the live
-- lease has left (by the database's clock, the one leases are taken by); no
-- row when the application does not exist.
SELECT state, attempts,
       coalesce(extract(epoch FROM lease_expires_at - now()), 0)::float8 AS lease_left_seconds
FROM deliveries
WHERE application_id = @application_id;

-- name: DeliveryMarkSent :execrows
-- Records the send, only for the attempt that owns the delivery. An erasure
-- that cancelled the delivery while this attempt was in flight leaves the
-- attempt's number in place: the email went, so the ledger says so.
UPDATE deliveries
SET state = 'sent', sent_at = now(), last_error_class = NULL, last_smtp_code = NULL,
    lease_expires_at = NULL, updated_at = now()
WHERE application_id = @application_id AND attempts = @attempt
  AND (state = 'sending' OR (state = 'cancelled' AND last_error_class = 'erased'));

-- name: DeliveryMarkSentMany :many
-- DeliveryMarkSent for many attempts at once (the store's group commit),
-- each named by application and attempt, with the same per-row rule; it
-- returns the applications whose record matched, and a caller whose row is
-- not among them reads why with DeliveryLeaseGet.
UPDATE deliveries d
SET state = 'sent', sent_at = now(), last_error_class = NULL, last_smtp_code = NULL,
    lease_expires_at = NULL, updated_at = now()
FROM (SELECT unnest(@application_ids::uuid[]) AS application_id, unnest(@attempts::int[]) AS attempt) r
WHERE d.application_id = r.application_id AND d.attempts = r.attempt
  AND (d.state = 'sending' OR (d.state = 'cancelled' AND d.last_error_class = 'erased'))
RETURNING d.application_id;

-- name: DeliveryMarkUnsent :execrows
-- Records a failed attempt, 'retrying' (River will try again) or 'failed',
-- only for the attempt that owns the delivery: a late attempt never
-- overwrites a newer one's state, and a sent delivery is never downgraded.
UPDATE deliveries
SET state = @state, last_error_class = @error_class, last_smtp_code = sqlc.narg(smtp_code),
    lease_expires_at = NULL, updated_at = now()
WHERE application_id = @application_id AND state = 'sending' AND attempts = @attempt;

-- name: DeliveryLeasesRenew :execrows
-- A worker's heartbeat renews the live leases held by the attempts that are
-- in flight in its process right now, each named by application and
-- attempt: an attempt that ended with its lease still set (it could not
-- record its outcome) keeps it only to its end, and the delivery is free
-- again then. A lease that already lapsed is never revived: its worker has
-- cut its send (see job.Heartbeat), and another attempt may have been let in.
UPDATE deliveries
SET lease_expires_at = now() + @lease::interval
WHERE (application_id, attempts) IN (SELECT unnest(@application_ids::uuid[]), unnest(@attempts::int[]))
  AND leased_by = @worker_id::text AND state = 'sending' AND lease_expires_at > now();

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// StatusReport is what an operator checks after a crash (intakectl status).
type StatusReport struct {
	OutboxUndispatched  int64
	OutboxOldestSeconds float64
	Jobs                []JobCount
	Deliveries          []DeliveryCount
	Workers             []Worker
	// AnalyticsLastError is the latest error of a retrying analytics job
	// (empty when none is retrying).
	AnalyticsLastError string

	// OutboxQuarantine counts the events set aside because they could not
	// become jobs (not in OutboxUndispatched: the relay no longer tries them).
	OutboxQuarantine QuarantineSummary

	// Reconciler is what the leader's reconciler found; Status leaves it
	// zero, the caller fills it with Store.Reconciler and its thresholds.
	Reconciler ReconcilerFinds
}

// JobCount is River's jobs of one kind in one state.
type JobCount struct {
	Kind                   string  `json:"kind"`
	State                  string  `json:"state"`
	Jobs                   int64   `json:"jobs"`
	OldestAvailableSeconds float64 `json:"oldest_available_seconds,omitempty"`
	OldestRunningSeconds   float64 `json:"oldest_running_seconds,omitempty"`
}

// DeliveryCount is the ledger's rows in one state.
type DeliveryCount struct {
	State          string `json:"state"`
	Deliveries     int64  `json:"deliveries"`
	Unacknowledged int64  `json:"unacknowledged,omitempty"`
}

// Worker is a worker process that reported recently.
type Worker struct {
	ID         string    `json:"id"`
	Hostname   string    `json:"hostname"`
	PID        int       `json:"pid"`
	StartedAt  time.Time `json:"started_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// Status gathers the report. Workers count as seen when they reported
// within seenWithin.
func (s *Store) Status(ctx context.Context, seenWithin time.Duration) (StatusReport, error) {
	var r StatusReport
	backlog, err := s.q.OutboxBacklog(ctx)
	if err != nil {
		return r, classify(err)
	}
	r.OutboxUndispatched, r.OutboxOldestSeconds = backlog.Undispatched, backlog.OldestSeconds
	if r.OutboxQuarantine, err = s.Quarantine(ctx); err != nil {
		return r, err
	}

	rows, err := s.pool.Query(ctx, db.RiverJobCounts)
	if err != nil {
		return r, classify(err)
	}
	r.Jobs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[JobCount])
	if err != nil {
		return r, classify(err)
	}

	if err := s.pool.QueryRow(ctx, db.RiverAnalyticsLastError).Scan(&r.AnalyticsLastError); err != nil {
		return r, classify(err)
	}

	deliveries, err := s.q.DeliveryCounts(ctx)
	if err != nil {
		return r, classify(err)
	}
	for _, d := range deliveries {
		r.Deliveries = append(r.Deliveries, DeliveryCount{State: d.State, Deliveries: d.Deliveries, Unacknowledged: d.Unacknowledged})
	}

	workers, err := s.q.WorkersSeenSince(ctx, interval(seenWithin))
	if err != nil {
		return r, classify(err)
	}
	for _, w := range workers {
		r.Workers = append(r.Workers, Worker{ID: w.WorkerID, Hostname: w.Hostname, PID: int(w.Pid), StartedAt: w.StartedAt, LastSeenAt: w.LastSeenAt})
	}
	return r, nil
}

// FailedDelivery is a confirmation email that will not be sent unless an
// operator retries it.
type FailedDelivery struct {
	ApplicationID  string     `json:"application_id"`
	Attempts       int        `json:"attempts"`
	ErrorClass     string     `json:"error_class"`
	SMTPCode       int        `json:"smtp_code,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
}

// FailedDeliveries lists the ledger's failed rows, oldest attempt first.
func (s *Store) FailedDeliveries(ctx context.Context) ([]FailedDelivery, error) {
	rows, err := s.q.DeliveriesFailed(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]FailedDelivery, len(rows))
	for i, r := range rows {
		out[i] = FailedDelivery{
			ApplicationID:  r.ApplicationID.String(),
			Attempts:       int(r.Attempts),
			ErrorClass:     r.LastErrorClass.String,
			SMTPCode:       int(r.LastSmtpCode.Int16),
			LastAttemptAt:  r.LastAttemptAt,
			AcknowledgedAt: r.AcknowledgedAt,
		}
	}
	return out, nil
}

// AcknowledgeFailedDeliveries marks failed deliveries as looked at (all of
// them when ids is empty), so intakectl status stops reporting them. Each
// acknowledgement is audited (deliveries.ack) in the same transaction.
func (s *Store) AcknowledgeFailedDeliveries(ctx context.Context, c access.Caller, ids []string) (int64, error) {
	uuids, err := parseUUIDs(ids)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.withTx(ctx, func(q *dbsqlc.Queries) error {
		acked, err := q.DeliveriesAcknowledge(ctx, uuids)
		n = int64(len(acked))
		return auditEach(ctx, q, c, "deliveries.ack", "application", acked, err)
	})
	return n, err
}

// auditEach records action as done on each of ids, after err (the
// change's) is nil.
func auditEach(ctx context.Context, q *dbsqlc.Queries, c access.Caller, action, targetType string, ids []uuid.UUID, err error) error {
	for _, id := range ids {
		if err != nil {
			return err
		}
		err = insertAudit(ctx, q, c, action, targetType, id.String(), access.OutcomeOK)
	}
	return err
}

// RequeueFailedDeliveries puts failed deliveries (all of them when ids is
// empty) back to 'queued' and, in the SAME transaction, has enqueue insert
// their email jobs. Deliveries that were sent are not touched, and the
// email worker skips any that turn out sent, so nobody is mailed twice.
// Each retry is audited (deliveries.retry) in the same transaction.
func (s *Store) RequeueFailedDeliveries(ctx context.Context, c access.Caller, ids []string, enqueue func(ctx context.Context, tx pgx.Tx, applicationIDs []string) error) ([]string, error) {
	uuids, err := parseUUIDs(ids)
	if err != nil {
		return nil, err
	}
	var requeued []string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		rows, err := q.DeliveriesRequeue(ctx, uuids)
		if err = auditEach(ctx, q, c, "deliveries.retry", "application", rows, err); err != nil || len(rows) == 0 {
			return err
		}
		requeued = make([]string, len(rows))
		for i, id := range rows {
			requeued[i] = id.String()
		}
		return enqueue(ctx, tx, requeued)
	})
	return requeued, classify(err)
}

// WorkerHeartbeat records that worker is alive.
func (s *Store) WorkerHeartbeat(ctx context.Context, w Worker) error {
	return classify(s.q.WorkerHeartbeat(ctx, dbsqlc.WorkerHeartbeatParams{
		WorkerID:  w.ID,
		Hostname:  w.Hostname,
		Pid:       int32(w.PID),
		StartedAt: w.StartedAt,
	}))
}

// WorkerGone removes a worker that stopped cleanly, and forgets workers
// that vanished long ago.
func (s *Store) WorkerGone(ctx context.Context, id string) error {
	if err := s.q.WorkerGone(ctx, id); err != nil {
		return classify(err)
	}
	return classify(s.q.WorkerHeartbeatsPrune(ctx))
}

func parseUUIDs(ids []string) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("%q is not an application id", id)
		}
		out[i] = u
	}
	return out, nil
}

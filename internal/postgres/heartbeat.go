package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// BeatOpts say what a heartbeat does besides saying the worker is alive.
type BeatOpts struct {
	// Lease renews the live delivery leases of InFlight to now() + Lease
	// (zero: none renewed).
	Lease time.Duration
	// InFlight are the email attempts running in the worker's process now:
	// only their leases are renewed, so the lease of an attempt that ended
	// without recording its outcome runs out.
	InFlight []Attempt
	// RescueDeadAfter, when positive, also rescues the running jobs of
	// workers whose heartbeat is older than this: their rows are
	// finalized, and new rows run them again.
	RescueDeadAfter time.Duration
}

// Attempt is one email attempt: the delivery's application and the attempt
// number DeliveryAttemptStartFor returned.
type Attempt struct {
	ApplicationID string
	Number        int
}

// RescuedJob is a running job of a dead worker that a heartbeat rescued.
type RescuedJob struct {
	// ID is the dead worker's row, finalized by the rescue.
	ID   int64
	Kind string
	// State is what the rescue made of the job: available (a new row,
	// NewID, runs it again now), discarded (its worker died on its last
	// attempt) or cancelled (an erasure asked to cancel it).
	State  string
	Worker string
	NewID  int64
}

// WorkerBeat records that w is alive, renews the delivery leases its
// in-flight attempts hold and, when asked, rescues the jobs of dead workers, all in
// ONE transaction: a beat costs one commit however much it does, and a
// beat that fails renews nothing. It returns how many leases it renewed
// and the jobs it rescued.
func (s *Store) WorkerBeat(ctx context.Context, w Worker, opts BeatOpts) (renewed int64, rescued []RescuedJob, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		renewed, rescued = 0, nil
		if err := q.WorkerHeartbeat(ctx, dbsqlc.WorkerHeartbeatParams{
			WorkerID:  w.ID,
			Hostname:  w.Hostname,
			Pid:       int32(w.PID),
			StartedAt: w.StartedAt,
		}); err != nil {
			return err
		}
		if opts.Lease > 0 && len(opts.InFlight) > 0 {
			p := dbsqlc.DeliveryLeasesRenewParams{Lease: interval(opts.Lease), WorkerID: w.ID}
			for _, a := range opts.InFlight {
				id, err := uuid.Parse(a.ApplicationID)
				if err != nil {
					return err
				}
				p.ApplicationIds = append(p.ApplicationIds, id)
				p.Attempts = append(p.Attempts, int32(a.Number))
			}
			n, err := q.DeliveryLeasesRenew(ctx, p)
			if err != nil {
				return err
			}
			renewed = n
		}
		if opts.RescueDeadAfter <= 0 {
			return nil
		}
		rows, err := tx.Query(ctx, db.RiverJobsRescue, interval(opts.RescueDeadAfter))
		if err != nil {
			return err
		}
		rescued, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (RescuedJob, error) {
			var j RescuedJob
			var newID *int64
			err := r.Scan(&j.ID, &j.Kind, &j.State, &j.Worker, &newID)
			if newID != nil {
				j.NewID = *newID
			}
			return j, err
		})
		if err != nil {
			return err
		}
		var again []int64
		for _, j := range rescued {
			if j.NewID != 0 {
				again = append(again, j.ID)
			}
		}
		if len(again) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, db.RiverJobsRescueInsert, again)
		return err
	})
	if err != nil {
		return 0, nil, classify(err)
	}
	return renewed, rescued, nil
}

func interval(d time.Duration) pgtype.Interval {
	return pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
}

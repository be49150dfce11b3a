package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// EnqueueFunc inserts the River jobs for events inside tx.
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, events []application.Event) error

// Dispatched is what one relay round did.
type Dispatched struct {
	// Events is how many events became jobs and were marked dispatched.
	Events int
	// Quarantined are the events set aside in this round.
	Quarantined []QuarantinedEvent
	// Recorded holds, for each analytics record the round wrote
	// (DispatchEventsAndRecord), its event's occurrence time: what the
	// relay's analytics metrics count and measure the lag of.
	Recorded []time.Time
}

// DispatchEvents is one round of the outbox relay. In ONE transaction it
// claims up to limit undispatched events (oldest first, FOR UPDATE SKIP
// LOCKED), has enqueue insert their River jobs, opens the delivery ledger
// rows, and marks the events dispatched. Either the jobs exist and the
// events are dispatched, or neither: a crash at any point leaves the events
// for the next round.
//
// An event that cannot become jobs is quarantined in the same transaction
// instead of failing the round, so it never holds up the events behind it
// (each round would otherwise claim it again, first, and fail again). A
// payload that does not decode is found before the insert. When the one
// batch insert fails, the round is rolled back and run again with each
// event's insert in its own savepoint: the events whose insert fails are
// quarantined and the rest dispatched. The happy path stays one
// InsertManyTx with no savepoints. An insert failure that is the system's
// and not an event's (the database unavailable, River's schema missing, or
// every event of the round failing alike) fails the round and quarantines
// nothing.
//
// The events' analytics records are left to their jobs (the http sink);
// DispatchEventsAndRecord writes them in the round instead.
func (s *Store) DispatchEvents(ctx context.Context, limit int, enqueue EnqueueFunc) (Dispatched, error) {
	return s.dispatchRetrying(ctx, limit, enqueue, false)
}

// DispatchEventsAndRecord is DispatchEvents for the Postgres analytics sink:
// the round also writes the analytics record of every event it dispatches,
// in one multi-row insert, so enqueue inserts no analytics job. The sink is
// a table in the database that holds the outbox, so it cannot be offline
// apart from the relay, and an analytics job's retries would buy nothing;
// written in the transaction that marks its event dispatched, the record
// exists exactly when the event was dispatched, once per event (invariant
// 6), with no job at all. A quarantined event gets no record until it is
// released and dispatched. The primary key on the event id keeps it to one
// even for an event an older worker's analytics job recorded already.
func (s *Store) DispatchEventsAndRecord(ctx context.Context, limit int, enqueue EnqueueFunc) (Dispatched, error) {
	return s.dispatchRetrying(ctx, limit, enqueue, true)
}

// dispatchRetrying runs a round and, when its batch insert failed for an
// event's sake, runs it again event by event.
func (s *Store) dispatchRetrying(ctx context.Context, limit int, enqueue EnqueueFunc, recordAnalytics bool) (Dispatched, error) {
	d, err := s.dispatch(ctx, limit, enqueue, roundOpts{recordAnalytics: recordAnalytics})
	var batch batchInsertError
	if errors.As(err, &batch) {
		d, err = s.dispatch(ctx, limit, enqueue, roundOpts{recordAnalytics: recordAnalytics, eachInOwnSavepoint: true})
	}
	return d, classify(err)
}

// roundOpts say how dispatch runs a round.
type roundOpts struct {
	// recordAnalytics writes the dispatched events' analytics records.
	recordAnalytics bool
	// eachInOwnSavepoint inserts event by event.
	eachInOwnSavepoint bool
}

// batchInsertError is a batch insert that failed in a way one of its events
// may have caused.
type batchInsertError struct{ err error }

func (e batchInsertError) Error() string { return "enqueue jobs: " + e.err.Error() }
func (e batchInsertError) Unwrap() error { return e.err }

// claimed is a claimed row and, once decoded, its event.
type claimed struct {
	row dbsqlc.OutboxClaimRow
	ev  application.Event
}

// poisoned is a claimed row that cannot become jobs, and why.
type poisoned struct {
	row    dbsqlc.OutboxClaimRow
	reason string
}

// dispatch runs one round.
func (s *Store) dispatch(ctx context.Context, limit int, enqueue EnqueueFunc, opts roundOpts) (Dispatched, error) {
	var d Dispatched
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		rows, err := q.OutboxClaim(ctx, int32(limit))
		if err != nil || len(rows) == 0 {
			return err
		}

		good := make([]claimed, 0, len(rows))
		var poison []poisoned
		for _, r := range rows {
			ev, err := decodeEvent(r)
			if err != nil {
				poison = append(poison, poisoned{r, short(err.Error())})
				continue
			}
			good = append(good, claimed{r, ev})
		}

		switch {
		case len(good) == 0:
		case opts.eachInOwnSavepoint:
			var rejected []poisoned
			good, rejected, err = enqueueEach(ctx, tx, good, enqueue)
			if err != nil {
				return err
			}
			poison = append(poison, rejected...)
		default:
			events := make([]application.Event, len(good))
			for i, c := range good {
				events[i] = c.ev
			}
			if err := enqueue(ctx, tx, events); err != nil {
				if eventsFault(err) {
					return batchInsertError{err}
				}
				return fmt.Errorf("enqueue jobs: %w", err)
			}
		}

		for _, p := range poison {
			if err := q.OutboxQuarantine(ctx, dbsqlc.OutboxQuarantineParams{ID: p.row.ID, Error: p.reason}); err != nil {
				return err
			}
			d.Quarantined = append(d.Quarantined, QuarantinedEvent{
				ID:          p.row.ID.String(),
				Kind:        p.row.Kind,
				AggregateID: p.row.AggregateID.String(),
				CreatedAt:   p.row.CreatedAt,
				Error:       p.reason,
			})
		}
		ids := make([]uuid.UUID, len(good))
		var submitted []uuid.UUID
		for i, c := range good {
			ids[i] = c.row.ID
			if c.row.Kind == application.EventSubmitted {
				submitted = append(submitted, c.row.AggregateID)
			}
		}
		if err := q.DeliveryQueue(ctx, submitted); err != nil {
			return err
		}
		if opts.recordAnalytics {
			if d.Recorded, err = q.AnalyticsEventRecordMany(ctx, analyticsRecords(good)); err != nil {
				return err
			}
		}
		if err := q.OutboxMarkDispatched(ctx, ids); err != nil {
			return err
		}
		d.Events = len(good)
		return nil
	})
	if err != nil {
		return Dispatched{}, err
	}
	return d, nil
}

// analyticsRecords are the analytics records of events, as one insert's
// arrays.
func analyticsRecords(events []claimed) dbsqlc.AnalyticsEventRecordManyParams {
	p := dbsqlc.AnalyticsEventRecordManyParams{
		EventIds:       make([]uuid.UUID, len(events)),
		Kinds:          make([]string, len(events)),
		ApplicationIds: make([]uuid.UUID, len(events)),
		PostingSlugs:   make([]string, len(events)),
		OccurredAts:    make([]time.Time, len(events)),
	}
	for i, c := range events {
		p.EventIds[i] = c.row.ID
		p.Kinds[i] = c.row.Kind
		p.ApplicationIds[i] = c.row.AggregateID
		p.PostingSlugs[i] = c.ev.PostingSlug
		p.OccurredAts[i] = c.row.CreatedAt
	}
	return p
}

// enqueueEach inserts each event's jobs in a savepoint of its own and
// returns the events that made it and those whose insert failed on their
// own account.
func enqueueEach(ctx context.Context, tx pgx.Tx, events []claimed, enqueue EnqueueFunc) (ok []claimed, rejected []poisoned, err error) {
	var first error
	for _, c := range events {
		sp, err := tx.Begin(ctx) // SAVEPOINT
		if err != nil {
			return nil, nil, err
		}
		insertErr := enqueue(ctx, sp, []application.Event{c.ev})
		if insertErr == nil {
			if err := sp.Commit(ctx); err != nil { // RELEASE SAVEPOINT
				return nil, nil, err
			}
			ok = append(ok, c)
			continue
		}
		if err := sp.Rollback(ctx); err != nil { // ROLLBACK TO SAVEPOINT
			return nil, nil, err
		}
		if !eventsFault(insertErr) {
			return nil, nil, fmt.Errorf("enqueue jobs: %w", insertErr)
		}
		if first == nil {
			first = insertErr
		}
		rejected = append(rejected, poisoned{c.row, short("jobs: " + insertErr.Error())})
	}
	if len(ok) == 0 {
		// No event of the round could be inserted: that says more about
		// the system (a River configuration, a trigger, a schema out of
		// step with a deploy) than about the events, even when the round
		// holds one event, as it does at low traffic. Nothing is set
		// aside; the round fails and is tried again. A poison event whose
		// insert fails stays first in line and is quarantined in the first
		// round where another event gets through.
		return nil, nil, fmt.Errorf("enqueue jobs: every event's insert failed: %w", first)
	}
	return ok, rejected, nil
}

// eventsFault reports whether a failed job insert can be an event's own
// fault: a Postgres data or integrity error, or an error that never reached
// the database (River refusing the event's job arguments). The database
// being unavailable, a missing schema or a permission is the system's
// fault, and quarantining for it would set healthy events aside.
func eventsFault(err error) bool {
	if unavailable(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		class := pgErr.Code[:2]
		return class == "22" || class == "23" // data exception, integrity constraint violation
	}
	return true
}

// decodeEvent turns a claimed row into the event its jobs are made from.
func decodeEvent(r dbsqlc.OutboxClaimRow) (application.Event, error) {
	var p submittedPayload
	if err := json.Unmarshal(r.Payload, &p); err != nil {
		return application.Event{}, fmt.Errorf("payload: %s", jsonProblem(err))
	}
	if p.PostingSlug == "" {
		return application.Event{}, errors.New("payload: posting_slug is missing")
	}
	return application.Event{
		ID:            r.ID.String(),
		Kind:          r.Kind,
		ApplicationID: r.AggregateID.String(),
		PostingSlug:   p.PostingSlug,
		OccurredAt:    r.CreatedAt,
	}, nil
}

// jsonProblem says what is wrong with a payload in a few words, naming the
// field and never quoting its value.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("json: cannot unmarshal %s into %s", typeErr.Value, typeErr.Field)
	}
	return err.Error()
}

// short bounds a quarantine error to what the column keeps, on a rune
// boundary.
func short(s string) string {
	const most = 300
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/intake/intake/db"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// Why an attempt could not start or record (DeliveryAttemptStart,
// DeliverySent, DeliveryUnsent).
var (
	// ErrAlreadySent: the ledger says the confirmation email went out.
	ErrAlreadySent = errors.New("confirmation already sent")
	// ErrDeliveryFailed: the delivery ended failed; only an operator's
	// retry (which queues it again) reopens it.
	ErrDeliveryFailed = errors.New("confirmation delivery already failed")
	// ErrDeliveryCancelled: the application was erased; its email never
	// goes.
	ErrDeliveryCancelled = errors.New("confirmation cancelled: the application was erased")
	// ErrLeaseLost: another attempt took the delivery over, so this one
	// must not record anything.
	ErrLeaseLost = errors.New("delivery lease taken over by a newer attempt")
)

// LeaseHeldError says a live attempt owns the delivery, and for how much
// longer at most.
type LeaseHeldError struct{ Left time.Duration }

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("another attempt holds the delivery for up to %s", e.Left.Round(time.Millisecond))
}

// DeliveryAttemptStart starts an attempt in its own committed statement,
// one that also reads what the confirmation email needs: the ledger says
// "sending", counts the attempt, and gives it the delivery's lease for the
// given duration. It returns the email's data and the attempt's number,
// which the attempt's DeliverySent or DeliveryUnsent must present. While
// another attempt's lease is live it returns a *LeaseHeldError;
// ErrAlreadySent, ErrDeliveryFailed or ErrDeliveryCancelled (erased) when
// there is nothing left to send; application.ErrNotFound when the
// application does not exist. The erasure's cancel and this start take the
// same row lock, so no attempt starts once an erasure has committed.
//
// The attempts of this process that start together share the statement
// (the store's group commit, see group): each gets the answer it would
// have got alone.
func (s *Store) DeliveryAttemptStart(ctx context.Context, applicationID string, lease time.Duration) (application.Confirmation, int, error) {
	return s.DeliveryAttemptStartFor(ctx, applicationID, lease, "")
}

// DeliveryAttemptStartFor is DeliveryAttemptStart for an attempt whose
// lease the heartbeat of worker (its id) renews (see WorkerBeat); an empty
// worker takes a lease nothing renews.
func (s *Store) DeliveryAttemptStartFor(ctx context.Context, applicationID string, lease time.Duration, worker string) (application.Confirmation, int, error) {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return application.Confirmation{}, 0, application.ErrNotFound
	}
	started, err := s.starts.do(ctx, startRequest{id: id, lease: lease, worker: worker})
	if err != nil {
		// The group's statement failed (or this attempt's context ended
		// first): this attempt alone, as if there were no group. Had the
		// failed statement committed after all, this start finds the lease
		// it took held and the job snoozes until it ends: a wait, never a
		// second send.
		return s.attemptStartAlone(ctx, id, lease, worker)
	}
	if !started.taken {
		return application.Confirmation{}, 0, s.notStarted(ctx, id)
	}
	return startedConfirmation(started.row), int(started.row.Attempts), nil
}

// attemptStartAlone is DeliveryAttemptStartFor in a statement of its own.
func (s *Store) attemptStartAlone(ctx context.Context, id uuid.UUID, lease time.Duration, worker string) (application.Confirmation, int, error) {
	r, err := s.q.DeliveryAttemptStart(ctx, dbsqlc.DeliveryAttemptStartParams{
		ApplicationID: id,
		Lease:         interval(lease),
		LeasedBy:      pgtype.Text{String: worker, Valid: worker != ""},
	})
	if err == nil {
		return startedConfirmation(r), int(r.Attempts), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return application.Confirmation{}, 0, classify(err)
	}
	return application.Confirmation{}, 0, s.notStarted(ctx, id)
}

// startedConfirmation is the email's data a start read.
func startedConfirmation(r dbsqlc.DeliveryAttemptStartRow) application.Confirmation {
	return application.Confirmation{
		ApplicationID: r.ID.String(),
		FullName:      r.FullName,
		Email:         r.Email,
		ReceivedAt:    r.ReceivedAt,
		PostingSlug:   r.PostingSlug,
		PostingTitle:  r.PostingTitle,
	}
}

// startRequest is one attempt's start in the group commit.
type startRequest struct {
	id     uuid.UUID
	lease  time.Duration
	worker string
}

// startResult is what the group's statement did for one start: taken, with
// the email's data and the attempt's number, or not (the caller reads why).
type startResult struct {
	row   dbsqlc.DeliveryAttemptStartRow
	taken bool
}

// startMany is the group commit's statement for starts: DeliveryAttemptStart
// for each of reqs (one per application) in one autocommit statement.
func (s *Store) startMany(ctx context.Context, reqs []startRequest) ([]startResult, error) {
	p := dbsqlc.DeliveryAttemptStartManyParams{
		ApplicationIds: make([]uuid.UUID, len(reqs)),
		Leases:         make([]pgtype.Interval, len(reqs)),
		LeasedBy:       make([]string, len(reqs)),
	}
	for i, r := range reqs {
		p.ApplicationIds[i], p.Leases[i], p.LeasedBy[i] = r.id, interval(r.lease), r.worker
	}
	rows, err := s.q.DeliveryAttemptStartMany(ctx, p)
	if err != nil {
		return nil, err
	}
	byApp := make(map[uuid.UUID]dbsqlc.DeliveryAttemptStartRow, len(rows))
	for _, r := range rows {
		byApp[r.ID] = dbsqlc.DeliveryAttemptStartRow(r)
	}
	out := make([]startResult, len(reqs))
	for i, r := range reqs {
		out[i].row, out[i].taken = byApp[r.id]
	}
	return out, nil
}

// notStarted says why DeliveryAttemptStart took nothing, from the ledger
// as it is now: a second statement only on this rare path, so an ordinary
// attempt stays one.
func (s *Store) notStarted(ctx context.Context, id uuid.UUID) error {
	held, err := s.q.DeliveryLeaseGet(ctx, id)
	if err != nil {
		return classify(err)
	}
	switch application.EmailState(held.State) {
	case application.EmailSent:
		return ErrAlreadySent
	case application.EmailFailed:
		return ErrDeliveryFailed
	case application.EmailCancelled:
		return ErrDeliveryCancelled
	default:
		return &LeaseHeldError{Left: max(0, time.Duration(held.LeaseLeftSeconds*float64(time.Second)))}
	}
}

// DeliverySent records the email as sent by attempt, in one autocommit
// statement. It does not complete the River job: the ledger is the truth,
// and a job that runs again after "sent" finds it sent and sends nothing,
// so the job's completion can be left to River's batched completer (a
// crash before it costs a harmless re-run, never a copy). ErrLeaseLost,
// with nothing written, when a newer attempt owns the delivery; nil when
// this attempt's send is recorded already (a retried record whose first
// commit did land).
//
// The records of this process that finish together share the statement
// (the store's group commit, see group); one whose group's statement
// failed is tried again alone, so one bad record never fails the others.
func (s *Store) DeliverySent(ctx context.Context, applicationID string, attempt int) error {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return application.ErrNotFound
	}
	matched, err := s.sents.do(ctx, sentRequest{id: id, attempt: attempt})
	if err != nil {
		return s.sentAlone(ctx, id, attempt)
	}
	if !matched {
		return s.notSent(ctx, id, attempt)
	}
	return nil
}

// sentAlone is DeliverySent in a statement of its own.
func (s *Store) sentAlone(ctx context.Context, id uuid.UUID, attempt int) error {
	n, err := s.q.DeliveryMarkSent(ctx, dbsqlc.DeliveryMarkSentParams{ApplicationID: id, Attempt: int32(attempt)})
	if err != nil {
		return classifyRecord(err)
	}
	if n == 1 {
		return nil
	}
	return s.notSent(ctx, id, attempt)
}

// sentRequest is one attempt's "sent" record in the group commit.
type sentRequest struct {
	id      uuid.UUID
	attempt int
}

// sentMany is the group commit's statement for "sent" records:
// DeliveryMarkSent for each of reqs (one per application) in one
// autocommit statement; whether each matched.
func (s *Store) sentMany(ctx context.Context, reqs []sentRequest) ([]bool, error) {
	p := dbsqlc.DeliveryMarkSentManyParams{
		ApplicationIds: make([]uuid.UUID, len(reqs)),
		Attempts:       make([]int32, len(reqs)),
	}
	for i, r := range reqs {
		p.ApplicationIds[i], p.Attempts[i] = r.id, int32(r.attempt)
	}
	ids, err := s.q.DeliveryMarkSentMany(ctx, p)
	if err != nil {
		return nil, err
	}
	recorded := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		recorded[id] = true
	}
	out := make([]bool, len(reqs))
	for i, r := range reqs {
		out[i] = recorded[r.id]
	}
	return out, nil
}

// classifyRecord is classify for recording "sent", which may be repeated
// at will (a repeat finds it recorded and answers nil): a connection lost
// mid-statement, whose outcome is unknown, is one more reason to try again
// (ErrUnavailable). Outside a transaction, pgx reports a connection that
// broke after the statement went out as an unexpected EOF, not as a
// network error.
func classifyRecord(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", application.ErrUnavailable, err)
	}
	return classify(err)
}

// notSent says why DeliveryMarkSent matched nothing: this attempt's send
// is recorded already (nil), or a newer attempt owns the delivery
// (ErrLeaseLost). A second statement only on this rare path.
func (s *Store) notSent(ctx context.Context, id uuid.UUID, attempt int) error {
	now, err := s.q.DeliveryLeaseGet(ctx, id)
	if err != nil {
		return classifyRecord(err)
	}
	if now.State == string(application.EmailSent) && int(now.Attempts) == attempt {
		return nil
	}
	return ErrLeaseLost
}

// DeliveryUnsent records attempt's failure: state is EmailRetrying or
// EmailFailed, class one of the application.Failure* classes, smtpCode the
// server's reply code or 0 when there was none. ErrLeaseLost, with nothing
// written, when a newer attempt owns the delivery.
func (s *Store) DeliveryUnsent(ctx context.Context, applicationID string, attempt int, state application.EmailState, class string, smtpCode int) error {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return application.ErrNotFound
	}
	n, err := s.q.DeliveryMarkUnsent(ctx, dbsqlc.DeliveryMarkUnsentParams{
		ApplicationID: id,
		Attempt:       int32(attempt),
		State:         string(state),
		ErrorClass:    pgtype.Text{String: class, Valid: true},
		SmtpCode:      pgtype.Int2{Int16: int16(smtpCode), Valid: smtpCode != 0},
	})
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// AbandonDeliveries ends, as failed ("abandoned"), the deliveries still
// queued, sending or retrying whose lease is over and which no River job
// can move on any more, and returns their application ids. quietFor is how
// long such a row must have been left alone first.
func (s *Store) AbandonDeliveries(ctx context.Context, quietFor time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, db.DeliveriesAbandon, interval(quietFor))
	if err != nil {
		return nil, classify(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, classify(err)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out, nil
}

package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// ErrAlreadySent is returned by DeliveryAttemptStart when the ledger says
// the confirmation email went out already.
var ErrAlreadySent = errors.New("confirmation already sent")

// Confirmation returns what the confirmation email for an application needs.
func (s *Store) Confirmation(ctx context.Context, applicationID string) (application.Confirmation, error) {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return application.Confirmation{}, application.ErrNotFound
	}
	r, err := s.q.ConfirmationGet(ctx, id)
	if err != nil {
		return application.Confirmation{}, classify(err)
	}
	return application.Confirmation{
		ApplicationID: r.ID.String(),
		FullName:      r.FullName,
		Email:         r.Email,
		ReceivedAt:    r.ReceivedAt,
		PostingSlug:   r.PostingSlug,
		PostingTitle:  r.PostingTitle,
		State:         application.EmailState(r.DeliveryState),
	}, nil
}

// DeliveryAttemptStart records, in its own committed transaction, that an
// attempt to send is starting, and returns the attempt count.
func (s *Store) DeliveryAttemptStart(ctx context.Context, applicationID string) (int, error) {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return 0, application.ErrNotFound
	}
	attempts, err := s.q.DeliveryAttemptStart(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrAlreadySent
	}
	if err != nil {
		return 0, classify(err)
	}
	return int(attempts), nil
}

// DeliverySent records the email as sent and, in the SAME transaction, runs
// complete (which completes the River job): the ledger and the job cannot
// disagree.
func (s *Store) DeliverySent(ctx context.Context, applicationID string, complete func(context.Context, pgx.Tx) error) error {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return application.ErrNotFound
	}
	return classify(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := s.q.WithTx(tx).DeliveryMarkSent(ctx, id); err != nil {
			return err
		}
		return complete(ctx, tx)
	}))
}

// DeliveryUnsent records a failed attempt: state is EmailRetrying or
// EmailFailed, class one of the application.Failure* classes, smtpCode the
// server's reply code or 0 when there was none.
func (s *Store) DeliveryUnsent(ctx context.Context, applicationID string, state application.EmailState, class string, smtpCode int) error {
	id, err := uuid.Parse(applicationID)
	if err != nil {
		return application.ErrNotFound
	}
	_, err = s.q.DeliveryMarkUnsent(ctx, dbsqlc.DeliveryMarkUnsentParams{
		ApplicationID: id,
		State:         string(state),
		ErrorClass:    pgtype.Text{String: class, Valid: true},
		SmtpCode:      pgtype.Int2{Int16: int16(smtpCode), Valid: smtpCode != 0},
	})
	return classify(err)
}

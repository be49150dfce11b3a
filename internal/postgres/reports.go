package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// BuildReport reads week's figures from the data as of now, in ONE
// repeatable-read transaction, so the totals and the postings' figures
// are of the same moment. Nothing is stored.
func (s *Store) BuildReport(ctx context.Context, week application.Week, now time.Time) (application.Report, error) {
	var r application.Report
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		r, err = buildReport(ctx, s.q.WithTx(tx), week, now)
		return err
	})
	return r, classify(err)
}

func buildReport(ctx context.Context, q *dbsqlc.Queries, week application.Week, now time.Time) (application.Report, error) {
	from, to := week.Start(), week.End()
	r := application.Report{Week: week.String(), From: from, To: to, BuiltAt: now.UTC(), Final: !now.Before(to)}
	rows, err := q.ReportFigures(ctx, dbsqlc.ReportFiguresParams{WeekStart: from, WeekEnd: to})
	if err != nil {
		return r, err
	}
	r.Postings = make([]application.PostingFigures, len(rows))
	for i, row := range rows {
		r.Postings[i] = application.PostingFigures{Slug: row.Slug, ReportFigures: figures(
			row.Received, row.Sent, row.Retrying, row.Failed, row.Pending, row.AnalyticsRecorded, row.Erasures,
			row.AcceptedP50, row.AcceptedP95)}
	}
	t, err := q.ReportTotals(ctx, dbsqlc.ReportTotalsParams{WeekStart: from, WeekEnd: to})
	if err != nil {
		return r, err
	}
	r.Totals = figures(t.Received, t.Sent, t.Retrying, t.Failed, t.Pending, t.AnalyticsRecorded, t.Erasures, t.AcceptedP50, t.AcceptedP95)
	return r, nil
}

func figures(received, sent, retrying, failed, pending, analytics, erasures int32, p50, p95 float64) application.ReportFigures {
	f := application.ReportFigures{
		Received: int(received), ConfirmationsSent: int(sent), ConfirmationsRetrying: int(retrying),
		ConfirmationsFailed: int(failed), ConfirmationsPending: int(pending),
		AnalyticsRecorded: int(analytics), Erasures: int(erasures),
	}
	if sent > 0 {
		f.EmailAcceptedP50, f.EmailAcceptedP95 = &p50, &p95
	}
	return f
}

// SaveReport stores r unless its week has a report already, and returns
// the stored one: whichever build committed first, so every worker that
// builds the same week ends up with the same row.
func (s *Store) SaveReport(ctx context.Context, r application.Report) (application.StoredReport, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return application.StoredReport{}, err
	}
	if _, err := s.q.ReportInsert(ctx, dbsqlc.ReportInsertParams{Week: r.Week, BuiltAt: r.BuiltAt, Body: body}); err != nil {
		return application.StoredReport{}, classify(err)
	}
	return storedReport(ctx, s.q, r.Week)
}

// StoredReport returns week's stored report, ErrNotFound when there is none.
func (s *Store) StoredReport(ctx context.Context, week application.Week) (application.StoredReport, error) {
	return storedReport(ctx, s.q, week.String())
}

func storedReport(ctx context.Context, q *dbsqlc.Queries, week string) (application.StoredReport, error) {
	row, err := q.ReportGet(ctx, week)
	if err != nil {
		return application.StoredReport{}, classify(err)
	}
	out := application.StoredReport{Stored: true, EmailedAt: row.EmailedAt}
	if err := json.Unmarshal(row.Body, &out.Report); err != nil {
		return application.StoredReport{}, err
	}
	return out, nil
}

// ReadReport is week's report for an admin, audited (reports.read, target
// the week): the stored one when there is one, else one built on demand
// as of now. ErrNotFound for a week that starts after now, or that has no
// stored report and nothing in it.
func (s *Store) ReadReport(ctx context.Context, c access.Caller, week application.Week, now time.Time) (application.StoredReport, error) {
	var out application.StoredReport
	err := s.audited(ctx, c, "reports.read", "report", func(q *dbsqlc.Queries) (string, error) {
		if week.Start().After(now) {
			return week.String(), application.ErrNotFound
		}
		var err error
		out, err = storedReport(ctx, q, week.String())
		if !errors.Is(err, application.ErrNotFound) {
			return week.String(), err
		}
		r, err := buildReport(ctx, q, week, now)
		if err != nil {
			return week.String(), err
		}
		if r.Totals.Empty() {
			return week.String(), application.ErrNotFound
		}
		out = application.StoredReport{Report: r}
		return week.String(), nil
	})
	return out, err
}

// ReportEmailStart starts an attempt at week's report email in its own
// committed transaction and gives it the lease for the given duration; it
// returns the attempt's number, which ReportEmailed or ReportEmailUnsent
// must present. ErrAlreadySent when the email went; a *LeaseHeldError
// while another attempt's lease is live.
func (s *Store) ReportEmailStart(ctx context.Context, week string, lease time.Duration) (int, error) {
	attempt, err := s.q.ReportEmailStart(ctx, dbsqlc.ReportEmailStartParams{
		Week: week, Lease: interval(lease),
	})
	if err == nil {
		return int(attempt), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, classify(err)
	}
	held, err := s.q.ReportEmailLeaseGet(ctx, week)
	if err != nil {
		return 0, classify(err)
	}
	if held.EmailedAt != nil {
		return 0, ErrAlreadySent
	}
	return 0, &LeaseHeldError{Left: time.Duration(held.LeaseLeftSeconds * float64(time.Second))}
}

// ReportEmailed records week's email as sent by attempt and, in the SAME
// transaction, runs complete (which completes the River job). ErrLeaseLost,
// with nothing written, when attempt no longer owns the email.
func (s *Store) ReportEmailed(ctx context.Context, week string, attempt int, complete func(context.Context, pgx.Tx) error) error {
	return classify(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n, err := s.q.WithTx(tx).ReportEmailed(ctx, dbsqlc.ReportEmailedParams{Week: week, Attempt: int32(attempt)})
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrLeaseLost
		}
		return complete(ctx, tx)
	}))
}

// ReportEmailUnsent gives attempt's lease back after a failed send.
func (s *Store) ReportEmailUnsent(ctx context.Context, week string, attempt int) error {
	_, err := s.q.ReportEmailUnsent(ctx, dbsqlc.ReportEmailUnsentParams{Week: week, Attempt: int32(attempt)})
	return classify(err)
}

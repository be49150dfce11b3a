package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// ApplicationsPage lists up to limit applications newest first, to the
// posting slug (every posting when empty; ErrNotFound for an unknown one),
// after the key (from the start when nil). The read is audited
// (applications.list, target the slug).
func (s *Store) ApplicationsPage(ctx context.Context, c access.Caller, slug string, after *application.PageKey, limit int) ([]application.Summary, error) {
	params := dbsqlc.ApplicationsPageParams{PostingSlug: slug, MaxRows: int32(limit)}
	if after != nil {
		id, err := uuid.Parse(after.ID)
		if err != nil {
			return nil, err
		}
		params.After, params.AfterReceivedAt, params.AfterID = true, after.ReceivedAt, id
	}
	var out []application.Summary
	err := s.audited(ctx, c, "applications.list", "posting", func(q *dbsqlc.Queries) (string, error) {
		if slug != "" {
			if _, err := q.PostingGetBySlug(ctx, slug); err != nil {
				return slug, classify(err)
			}
		}
		rows, err := q.ApplicationsPage(ctx, params)
		out = make([]application.Summary, len(rows))
		for i, r := range rows {
			out[i] = application.Summary{ID: r.ID.String(), PostingSlug: r.PostingSlug, FullName: r.FullName, Email: r.Email, ReceivedAt: r.ReceivedAt}
		}
		return slug, err
	})
	return out, err
}

// ApplicationRecord reads one application for an admin; the read of
// personal data is audited (applications.read, target the id), an unknown
// id too (outcome error).
func (s *Store) ApplicationRecord(ctx context.Context, c access.Caller, id string) (application.Record, error) {
	appID, err := uuid.Parse(id)
	if err != nil {
		return application.Record{}, application.ErrNotFound
	}
	var rec application.Record
	err = s.audited(ctx, c, "applications.read", "application", func(q *dbsqlc.Queries) (string, error) {
		r, err := q.ApplicationAdminGet(ctx, appID)
		if err != nil {
			return id, classify(err)
		}
		answers, err := decodeAnswers(r.Answers)
		if err != nil {
			return id, err
		}
		rec = application.Record{
			ID: r.ID.String(), PostingSlug: r.PostingSlug, ReceivedAt: r.ReceivedAt,
			Applicant: application.Applicant{FullName: r.FullName, Email: r.Email, Phone: r.Phone.String,
				CoverLetter: r.CoverLetter.String, Links: r.Links, Answers: answers},
			Email: application.EmailStatus{State: application.EmailState(r.DeliveryState), Attempts: int(r.DeliveryAttempts),
				LastAttemptAt: r.LastAttemptAt},
			EmailSentAt: r.SentAt, EmailErrorClass: r.LastErrorClass.String, EmailSMTPCode: int(r.LastSmtpCode.Int16),
			AnalyticsRecordedAt: r.AnalyticsRecordedAt, ErasedAt: r.ErasedAt,
		}
		f, err := q.ApplicationFileInfo(ctx, appID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return id, err
		default:
			rec.CV = &application.FileInfo{Filename: f.Filename, ContentType: f.ContentType, Size: f.Size, SHA256: f.Sha256}
		}
		return id, nil
	})
	return rec, err
}

// ApplicationCV reads an application's CV, bytes included, for an admin;
// the download is audited (applications.cv_download, target the id), and
// ErrNotFound, for an unknown id or an application without a CV, too
// (outcome error).
func (s *Store) ApplicationCV(ctx context.Context, c access.Caller, id string) (application.File, error) {
	appID, err := uuid.Parse(id)
	if err != nil {
		return application.File{}, application.ErrNotFound
	}
	var out application.File
	err = s.audited(ctx, c, "applications.cv_download", "application", func(q *dbsqlc.Queries) (string, error) {
		f, err := q.ApplicationFileGet(ctx, appID)
		if err != nil {
			return id, classify(err)
		}
		out = application.File{Filename: f.Filename, ContentType: f.ContentType, Content: f.Content}
		return id, nil
	})
	return out, err
}

// AddPosting creates an open posting on behalf of c (audited as
// jobs.create, target the slug).
func (s *Store) AddPosting(ctx context.Context, c access.Caller, p application.NewPosting) (application.Posting, error) {
	var out application.Posting
	err := s.audited(ctx, c, "jobs.create", "posting", func(q *dbsqlc.Queries) (string, error) {
		var err error
		out, err = insertPosting(ctx, q, p)
		return p.Slug, err
	})
	return out, err
}

// UpdatePosting changes the posting's fields that patch sets, on behalf of
// c (audited as jobs.update, target the slug).
func (s *Store) UpdatePosting(ctx context.Context, c access.Caller, slug string, patch application.PostingPatch) (application.Posting, error) {
	var out application.Posting
	err := s.audited(ctx, c, "jobs.update", "posting", func(q *dbsqlc.Queries) (string, error) {
		params := dbsqlc.PostingUpdateParams{Slug: slug, Title: text(patch.Title), Description: text(patch.Description),
			Location: text(patch.Location), Team: text(patch.Team)}
		if patch.Status != nil {
			params.Status = text((*string)(patch.Status))
		}
		row, err := q.PostingUpdate(ctx, params)
		if err != nil {
			return slug, classify(err)
		}
		out, err = toPosting(row)
		return slug, err
	})
	return out, err
}

func text(p *string) pgtype.Text {
	if p == nil {
		return pgtype.Text{}
	}
	return pgtype.Text{String: *p, Valid: true}
}

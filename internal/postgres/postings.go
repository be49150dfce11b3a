package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// ErrSlugTaken is returned by CreatePosting when the slug is in use.
var ErrSlugTaken = errors.New("slug already in use")

// CreatePosting stores a new, open posting.
func (s *Store) CreatePosting(ctx context.Context, p application.NewPosting) (application.Posting, error) {
	row, err := s.q.PostingInsert(ctx, dbsqlc.PostingInsertParams{
		Slug:        p.Slug,
		Title:       p.Title,
		Description: p.Description,
		Location:    p.Location,
		Team:        p.Team,
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return application.Posting{}, ErrSlugTaken
	}
	if err != nil {
		return application.Posting{}, classify(err)
	}
	return toPosting(row), nil
}

// Posting returns the posting with slug, open or closed.
func (s *Store) Posting(ctx context.Context, slug string) (application.Posting, error) {
	row, err := s.q.PostingGetBySlug(ctx, slug)
	if err != nil {
		return application.Posting{}, classify(err)
	}
	return toPosting(row), nil
}

// OpenPostings lists the postings that take applications, oldest first.
func (s *Store) OpenPostings(ctx context.Context) ([]application.Posting, error) {
	rows, err := s.q.PostingListOpen(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return toPostings(rows), nil
}

// Postings lists every posting, oldest first.
func (s *Store) Postings(ctx context.Context) ([]application.Posting, error) {
	rows, err := s.q.PostingList(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return toPostings(rows), nil
}

func toPosting(r dbsqlc.Posting) application.Posting {
	return application.Posting{
		ID:          r.ID,
		Slug:        r.Slug,
		Title:       r.Title,
		Description: r.Description,
		Location:    r.Location,
		Team:        r.Team,
		Status:      application.PostingStatus(r.Status),
		CreatedAt:   r.CreatedAt,
	}
}

func toPostings(rows []dbsqlc.Posting) []application.Posting {
	out := make([]application.Posting, len(rows))
	for i, r := range rows {
		out[i] = toPosting(r)
	}
	return out
}

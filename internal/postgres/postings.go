package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres/dbsqlc"
)

// ErrSlugTaken is returned by CreatePosting when the slug is in use.
var ErrSlugTaken = errors.New("slug already in use")

// CreatePosting stores a new, open posting.
func (s *Store) CreatePosting(ctx context.Context, p application.NewPosting) (application.Posting, error) {
	out, err := insertPosting(ctx, s.q, p)
	return out, classify(err)
}

// insertPosting inserts p with q; ErrSlugTaken when its slug is in use.
func insertPosting(ctx context.Context, q *dbsqlc.Queries, p application.NewPosting) (application.Posting, error) {
	params, err := postingInsertParams(p)
	if err != nil {
		return application.Posting{}, err
	}
	row, err := q.PostingInsert(ctx, params)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return application.Posting{}, ErrSlugTaken
	}
	if err != nil {
		return application.Posting{}, err
	}
	return toPosting(row)
}

// Posting returns the posting with slug, open or closed.
func (s *Store) Posting(ctx context.Context, slug string) (application.Posting, error) {
	row, err := s.q.PostingGetBySlug(ctx, slug)
	if err != nil {
		return application.Posting{}, classify(err)
	}
	return toPosting(row)
}

// PostingQuestions returns the questions of the posting with slug, open or
// closed; ErrNotFound when there is no such posting. Only the first call for
// a slug reads the database (one indexed read): the submit path asks for
// every application, and the answer cannot change (see Store.questions). An
// unknown slug is not remembered, so a posting created later is found.
func (s *Store) PostingQuestions(ctx context.Context, slug string) ([]application.Question, error) {
	if qs, ok := s.questions.Load(slug); ok {
		return qs.([]application.Question), nil
	}
	raw, err := s.q.PostingQuestionsGet(ctx, slug)
	if err != nil {
		return nil, classify(err)
	}
	qs, err := decodeQuestions(raw)
	if err != nil {
		return nil, err
	}
	s.questions.Store(slug, qs)
	return qs, nil
}

// OpenPostings lists the postings that take applications, oldest first.
func (s *Store) OpenPostings(ctx context.Context) ([]application.Posting, error) {
	rows, err := s.q.PostingListOpen(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return toPostings(rows)
}

// Postings lists every posting, oldest first.
func (s *Store) Postings(ctx context.Context) ([]application.Posting, error) {
	rows, err := s.q.PostingList(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return toPostings(rows)
}

// postingInsertParams is p as PostingInsert stores it, its questions as
// the JSON list postings.questions holds.
func postingInsertParams(p application.NewPosting) (dbsqlc.PostingInsertParams, error) {
	questions := p.Questions
	if questions == nil {
		questions = []application.Question{}
	}
	raw, err := json.Marshal(questions)
	if err != nil {
		return dbsqlc.PostingInsertParams{}, err
	}
	return dbsqlc.PostingInsertParams{Slug: p.Slug, Title: p.Title, Description: p.Description,
		Location: p.Location, Team: p.Team, Questions: raw}, nil
}

func decodeQuestions(raw []byte) ([]application.Question, error) {
	var qs []application.Question
	if err := json.Unmarshal(raw, &qs); err != nil {
		return nil, fmt.Errorf("posting questions: %w", err)
	}
	return qs, nil
}

func toPosting(r dbsqlc.Posting) (application.Posting, error) {
	qs, err := decodeQuestions(r.Questions)
	if err != nil {
		return application.Posting{}, err
	}
	return application.Posting{
		ID:          r.ID,
		Slug:        r.Slug,
		Title:       r.Title,
		Description: r.Description,
		Location:    r.Location,
		Team:        r.Team,
		Status:      application.PostingStatus(r.Status),
		CreatedAt:   r.CreatedAt,
		Questions:   qs,
	}, nil
}

func toPostings(rows []dbsqlc.Posting) ([]application.Posting, error) {
	out := make([]application.Posting, len(rows))
	for i, r := range rows {
		p, err := toPosting(r)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

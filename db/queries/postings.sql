-- name: PostingInsert :one
INSERT INTO postings (slug, title, description, location, team, questions)
VALUES (@slug, @title, @description, @location, @team, @questions)
RETURNING *;

-- name: PostingGetBySlug :one
SELECT * FROM postings WHERE slug = @slug;

-- name: PostingQuestionsGet :one
-- The one read a JSON submit makes before its transaction: the questions
-- its answers are validated against (fixed once the posting exists, so
-- they cannot change between this read and the insert).
SELECT questions FROM postings WHERE slug = @slug;

-- name: PostingList :many
SELECT * FROM postings ORDER BY created_at, id;

-- name: PostingListOpen :many
SELECT * FROM postings WHERE status = 'open' ORDER BY created_at, id;

-- name: PostingUpdate :one
-- NULL leaves a field as it is.
UPDATE postings
SET title = coalesce(sqlc.narg(title), title),
    description = coalesce(sqlc.narg(description), description),
    location = coalesce(sqlc.narg(location), location),
    team = coalesce(sqlc.narg(team), team),
    status = coalesce(sqlc.narg(status), status),
    updated_at = now()
WHERE slug = @slug
RETURNING *;

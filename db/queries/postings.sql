-- name: PostingInsert :one
INSERT INTO postings (slug, title, description)
VALUES (@slug, @title, @description)
RETURNING *;

-- name: PostingGetBySlug :one
SELECT * FROM postings WHERE slug = @slug;

-- name: PostingList :many
SELECT * FROM postings ORDER BY created_at, id;

-- name: PostingListOpen :many
SELECT * FROM postings WHERE status = 'open' ORDER BY created_at, id;

-- name: PostingSetStatus :one
UPDATE postings SET status = @status, updated_at = now()
WHERE slug = @slug
RETURNING *;

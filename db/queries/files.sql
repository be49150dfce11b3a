-- name: ApplicationFileInsert :exec
-- An application's CV, in the submit transaction that inserts the
-- application.
INSERT INTO application_files (application_id, filename, content_type, size, sha256, content)
VALUES (@application_id, @filename, @content_type, @size, @sha256, @content);

-- name: ApplicationFileInfo :one
-- What an admin reads about an application's CV, without its bytes.
SELECT filename, content_type, size, sha256
FROM application_files
WHERE application_id = @application_id;

-- name: ApplicationFileGet :one
-- An application's CV with its bytes, for the download.
SELECT filename, content_type, content
FROM application_files
WHERE application_id = @application_id;

-- name: ApplicationFileDelete :exec
-- Erasure: the CV is personal data from its first byte to its name.
DELETE FROM application_files WHERE application_id = @application_id;

-- +goose Up

-- An application's CV, at most one, in its own table so the application
-- lists never read the bytes. content_type is what the server recognised
-- from the content (internal/cvfile), never what the client declared;
-- filename is the sanitised base name, used only for the download's
-- Content-Disposition. Erasure deletes the row with the application's
-- personal data, in the same transaction.
CREATE TABLE application_files (
    application_id uuid        PRIMARY KEY REFERENCES applications (id),
    filename       text        NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type   text        NOT NULL CHECK (content_type IN (
        'application/pdf',
        'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
        'application/vnd.oasis.opendocument.text',
        'text/plain; charset=utf-8')),
    size           bigint      NOT NULL CHECK (size > 0 AND size = length(content)),
    sha256         bytea       NOT NULL CHECK (length(sha256) = 32),
    content        bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE application_files;

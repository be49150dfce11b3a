-- +goose Up

-- A posting's extra questions (application.Question, as JSON: key, label,
-- kind, required, choices, hint), validated by the code before they are
-- stored and fixed once the posting exists.
ALTER TABLE postings ADD COLUMN questions jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(questions) = 'array' AND jsonb_array_length(questions) <= 20);

-- An application's answers by question key: strings, and booleans for
-- yes_no questions. Personal data: erasure overwrites them with '{}'. The
-- size bound is 20 long answers of 5000 characters at 4 bytes each, with
-- room for the keys.
ALTER TABLE applications ADD COLUMN answers jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(answers) = 'object' AND octet_length(answers::text) <= 420000);

-- +goose Down
ALTER TABLE applications DROP COLUMN answers;
ALTER TABLE postings DROP COLUMN questions;

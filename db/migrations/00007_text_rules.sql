-- +goose Up

-- The database refuses what the API's field rules refuse (internal/
-- application), as a backstop for any other writer: none of the worst
-- format characters (zero-width space, bidi mark, override, embedding,
-- isolate, byte-order mark, soft hyphen, word joiner, tag) nor a line or
-- paragraph separator in a single-line field (the joiners U+200C and
-- U+200D are left to the application, which allows them only between
-- letters of scripts spelled with them), no direction
-- override, embedding or isolate in the cover letter, no user name or
-- password in a link. NOT VALID: enforced on every row written from now on,
-- without failing the migration over rows stored before the rules.
-- +goose StatementBegin
CREATE FUNCTION intake_plain_line(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN s !~ '[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]';
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION intake_links_plain(links text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN NOT EXISTS (
    SELECT 1 FROM unnest(links) AS l
    WHERE NOT intake_plain_line(l) OR l ~* '^[a-z][a-z0-9+.-]*://[^/?#]*@'
);
-- +goose StatementEnd

ALTER TABLE applications
    ADD CONSTRAINT applications_full_name_plain CHECK (intake_plain_line(full_name)) NOT VALID,
    ADD CONSTRAINT applications_email_plain CHECK (intake_plain_line(email)) NOT VALID,
    ADD CONSTRAINT applications_phone_plain CHECK (intake_plain_line(phone)) NOT VALID,
    ADD CONSTRAINT applications_links_plain CHECK (intake_links_plain(links)) NOT VALID,
    ADD CONSTRAINT applications_cover_letter_direction
        CHECK (cover_letter !~ '[\u202a-\u202e\u2066-\u2069]') NOT VALID;

-- +goose Down
ALTER TABLE applications
    DROP CONSTRAINT applications_cover_letter_direction,
    DROP CONSTRAINT applications_links_plain,
    DROP CONSTRAINT applications_phone_plain,
    DROP CONSTRAINT applications_email_plain,
    DROP CONSTRAINT applications_full_name_plain;
DROP FUNCTION intake_links_plain;
DROP FUNCTION intake_plain_line;

-- +goose Up

-- Where a posting is based and which team it joins, shown beside its title
-- on the careers pages. Both optional (empty when not given), one short line
-- each, by the rules the API applies (internal/application).
ALTER TABLE postings
    ADD COLUMN location text NOT NULL DEFAULT '' CHECK (length(location) <= 200),
    ADD COLUMN team     text NOT NULL DEFAULT '' CHECK (length(team) <= 200);

-- +goose Down
ALTER TABLE postings
    DROP COLUMN team,
    DROP COLUMN location;

-- +goose Up

-- Workers report here every few seconds, so an operator (intakectl status)
-- can tell "no worker is running" from "workers are slow".
CREATE TABLE worker_heartbeats (
    worker_id    text        PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 200),
    hostname     text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);

-- A failed delivery stays on intakectl status until an operator has looked
-- at it (intakectl deliveries ack) or retried it.
ALTER TABLE deliveries ADD COLUMN acknowledged_at timestamptz;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN acknowledged_at;
DROP TABLE worker_heartbeats;

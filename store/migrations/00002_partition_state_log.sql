-- +goose Up
-- Partition state moves from one row per (fan, performer), upserted at every
-- checkpoint, to a log of binary chunks per partition: a checkpoint appends one
-- delta chunk, and every so often the owner writes a snapshot and drops the
-- chunks before it. Upserting a row per changed pair bounded the consumer at
-- ~50k events/s on two cores; appending one chunk per batch does not.
CREATE TABLE partition_state (
    group_id   text NOT NULL,
    partition  integer NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('snapshot', 'delta')),
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, partition, seq)
);

-- Nothing has been deployed with the per-pair tables; their data is not carried over.
DROP TABLE listening_state;
DROP TABLE session_state;

-- +goose Down
DROP TABLE partition_state;
CREATE TABLE listening_state (
    group_id     text NOT NULL,
    partition    integer NOT NULL,
    fan_id       uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    performer_id text NOT NULL,
    last_day     integer NOT NULL,
    seconds      bytea NOT NULL,
    PRIMARY KEY (group_id, partition, fan_id, performer_id)
);
CREATE TABLE session_state (
    group_id   text NOT NULL,
    partition  integer NOT NULL,
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (group_id, partition, fan_id)
);

-- +goose Up
-- Social queuing (F12). A show's sale admits the fans who join its queue in
-- batches: priority tiers first, then the general queue, then (when the sale
-- relegates them) automated accounts; first come, first served within each.

-- What bot detection (F13, F14) concluded about a fan. No row: unknown,
-- treated as human.
CREATE TABLE fan_classifications (
    fan_id     uuid PRIMARY KEY REFERENCES fans (id) ON DELETE CASCADE,
    class      text NOT NULL CHECK (class IN ('human', 'automated', 'unknown')),
    reason     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sales (
    show_id        text PRIMARY KEY REFERENCES shows (id) ON DELETE CASCADE,
    opens_at       timestamptz NOT NULL,
    batch_size     integer NOT NULL CHECK (batch_size > 0),
    batch_interval interval NOT NULL CHECK (batch_interval > interval '0'),
    -- Tier (as a string) -> section name: {"2": "Floor A", "1": "Lower bowl", "0": "General"}.
    sections       jsonb NOT NULL DEFAULT '{}',
    automated      text NOT NULL DEFAULT 'relegate' CHECK (automated IN ('relegate', 'bar')),
    -- When the next batch may be admitted; opens_at until the first one is.
    next_batch_at  timestamptz NOT NULL,
    last_batch_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sales_next_batch ON sales (next_batch_at);

-- One row per queue of a sale: 'joined' is the last sequence number handed
-- out, taken by the joining transaction with an upsert that holds this row's
-- lock until it commits, so numbers are 1..n without gaps or duplicates (a
-- Postgres sequence skips numbers on every rollback). 'admitted_through' is
-- the highest sequence number admitted: admission takes each queue in order,
-- so every entry at or below it is admitted and every one above it waits.
CREATE TABLE sale_queues (
    show_id          text NOT NULL REFERENCES sales (show_id) ON DELETE CASCADE,
    queue            integer NOT NULL, -- tier >= 1; 0 general; -1 relegated
    joined           bigint NOT NULL DEFAULT 0,
    admitted_through bigint NOT NULL DEFAULT 0,
    admitted         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (show_id, queue)
);

CREATE TABLE queue_entries (
    show_id        text NOT NULL REFERENCES sales (show_id) ON DELETE CASCADE,
    fan_id         uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    queue          integer NOT NULL,
    -- The tier the fan's offers earned; the queue says whether it counted.
    tier           integer NOT NULL DEFAULT 0,
    seq            bigint NOT NULL CHECK (seq > 0),
    classification text NOT NULL CHECK (classification IN ('human', 'automated', 'unknown')),
    joined_at      timestamptz NOT NULL,
    admitted_at    timestamptz,
    -- Set at admission: the section the fan was admitted to.
    section        text,
    PRIMARY KEY (show_id, fan_id),
    UNIQUE (show_id, queue, seq)
);
CREATE INDEX queue_entries_waiting ON queue_entries (show_id, queue, seq) WHERE admitted_at IS NULL;

-- Sequence numbers of waiting entries deleted since (fans erased, F3), so
-- that positions and batch sizes, worked out from the counters above, do not
-- count them. Numbers at or below a queue's admitted_through no longer matter.
CREATE TABLE queue_gaps (
    show_id text NOT NULL REFERENCES sales (show_id) ON DELETE CASCADE,
    queue   integer NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (show_id, queue, seq)
);

-- +goose StatementBegin
CREATE FUNCTION queue_entry_gap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A sale being deleted takes its entries with it; it leaves no gaps.
    INSERT INTO queue_gaps (show_id, queue, seq)
    SELECT OLD.show_id, OLD.queue, OLD.seq WHERE EXISTS (SELECT 1 FROM sales WHERE show_id = OLD.show_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER queue_entries_gap AFTER DELETE ON queue_entries
    FOR EACH ROW WHEN (OLD.admitted_at IS NULL) EXECUTE FUNCTION queue_entry_gap();

-- +goose Down
DROP TRIGGER queue_entries_gap ON queue_entries;
DROP FUNCTION queue_entry_gap();
DROP TABLE queue_gaps, queue_entries, sale_queues, sales, fan_classifications;

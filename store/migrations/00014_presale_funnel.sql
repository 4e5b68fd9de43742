-- +goose Up
-- A show's pool of unique presale codes: each offer for the show takes one in
-- the checkpoint that writes it; an empty pool stops offers (with a reason).
CREATE TABLE presale_codes (
    show_id     text NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    code        text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    offer_id    uuid UNIQUE REFERENCES offers (id) ON DELETE SET NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    assigned_at timestamptz,
    PRIMARY KEY (show_id, code)
);
CREATE INDEX presale_codes_free ON presale_codes (show_id, imported_at, code) WHERE offer_id IS NULL;
ALTER TABLE offers ADD COLUMN presale_code text;

-- Ticket purchases for a show, from ticket_purchase events: what the funnel
-- compares between offered and held-out fans (the rule's real uplift).
-- Erasure deletes a fan's rows itself.
CREATE TABLE conversions (
    fan_id   uuid NOT NULL,
    show_id  text NOT NULL,
    event_id text NOT NULL,
    quantity bigint NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX conversions_show ON conversions (show_id, fan_id, at);

-- +goose Down
DROP TABLE conversions;
ALTER TABLE offers DROP COLUMN presale_code;
DROP TABLE presale_codes;

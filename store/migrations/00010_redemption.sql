-- +goose Up
-- Redemption (F11): an offer is redeemed once, through a partner, while it is
-- live and its tier has units left. The first open of its link and its
-- redemption are kept with the fan's reaction times, which F14 reads.
ALTER TABLE offers
    DROP CONSTRAINT offers_status_check,
    ADD CONSTRAINT offers_status_check
        CHECK (status IN ('issued', 'delivered', 'failed', 'expired', 'redeemed')),
    -- The first time the fan opened the offer's link while it could be redeemed.
    ADD COLUMN opened_at timestamptz,
    ADD COLUMN redeemed_at timestamptz;

-- Units a rule's tier may hand out, and how many are taken. A tier without a
-- row has no limit. Redemption takes a unit with a conditional update, so the
-- database, not the application, keeps redeemed within units.
CREATE TABLE tier_inventory (
    rule_id    text NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    tier       integer NOT NULL CHECK (tier >= 1),
    units      integer NOT NULL CHECK (units >= 0),
    redeemed   integer NOT NULL DEFAULT 0 CHECK (redeemed >= 0 AND redeemed <= units),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, tier)
);

-- One row per redeemed offer (the primary key makes redemption single-use a
-- second time over). sent_at is when the offer was delivered, or issued when
-- the redemption came before the delivery was recorded; the reaction times
-- are measured from it, in milliseconds, for bot detection (F13).
CREATE TABLE redemptions (
    offer_id         uuid PRIMARY KEY REFERENCES offers (id) ON DELETE CASCADE,
    fan_id           uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    partner_id       text NOT NULL REFERENCES partners (id),
    rule_id          text NOT NULL,
    tier             integer NOT NULL,
    sent_at          timestamptz NOT NULL,
    opened_at        timestamptz,
    redeemed_at      timestamptz NOT NULL,
    sent_to_opened_ms   bigint GENERATED ALWAYS AS ((extract(epoch FROM opened_at - sent_at) * 1000)::bigint) STORED,
    sent_to_redeemed_ms bigint GENERATED ALWAYS AS ((extract(epoch FROM redeemed_at - sent_at) * 1000)::bigint) STORED
);
CREATE INDEX redemptions_fan ON redemptions (fan_id, redeemed_at);

-- +goose Down
DROP TABLE redemptions, tier_inventory;
-- The old states have no "redeemed": such offers end as expired, with the reason.
UPDATE offers SET status = 'expired', status_reason = 'redeemed' WHERE status = 'redeemed';
ALTER TABLE offers
    DROP COLUMN redeemed_at,
    DROP COLUMN opened_at,
    DROP CONSTRAINT offers_status_check,
    ADD CONSTRAINT offers_status_check CHECK (status IN ('issued', 'delivered', 'failed', 'expired'));

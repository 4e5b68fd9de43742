-- +goose Up
-- Bot detection (F13, F14): the evidence behind each fan's class, the
-- reseller watch list, marketers' overrides and their audit log, and the
-- social ties the ring job reads.

-- A fan's class is now human, suspect or automated (unknown: not classified
-- yet), with the reasons behind it.
ALTER TABLE fan_classifications DROP CONSTRAINT fan_classifications_class_check,
    ADD CONSTRAINT fan_classifications_class_check CHECK (class IN ('human', 'suspect', 'automated', 'unknown')),
    ADD COLUMN reasons jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN overridden boolean NOT NULL DEFAULT false;
ALTER TABLE queue_entries DROP CONSTRAINT queue_entries_classification_check,
    ADD CONSTRAINT queue_entries_classification_check CHECK (classification IN ('human', 'suspect', 'automated', 'unknown'));

-- Redemptions a declared agent made for its fan (F15): their reaction time
-- is the agent's, never evidence of a disguised bot.
ALTER TABLE redemptions ADD COLUMN by_agent boolean NOT NULL DEFAULT false;

-- live: what the consumer's per-fan signals showed at the last change;
-- batch: what the scheduled job found (rings, reaction times).
CREATE TABLE bot_evidence (
    fan_id     uuid PRIMARY KEY REFERENCES fans (id) ON DELETE CASCADE,
    live       jsonb NOT NULL DEFAULT '{}',
    batch      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Whom each fan befriends or talks to, by the other account's partner user
-- id, from their latest social_graph event.
CREATE TABLE social_ties (
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    partner_id text NOT NULL,
    other_user text NOT NULL,
    weight     double precision NOT NULL,
    PRIMARY KEY (fan_id, partner_id, other_user)
);

CREATE TABLE reseller_watch (
    fan_id   uuid PRIMARY KEY REFERENCES fans (id) ON DELETE CASCADE,
    note     text NOT NULL DEFAULT '',
    added_by text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bot_overrides (
    fan_id     uuid PRIMARY KEY REFERENCES fans (id) ON DELETE CASCADE,
    class      text NOT NULL CHECK (class IN ('human', 'suspect', 'automated')),
    note       text NOT NULL,
    set_by     text NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now()
);

-- Every override set or cleared, kept after the override itself goes; an
-- erased fan's entries go with the fan.
CREATE TABLE bot_override_log (
    id       bigserial PRIMARY KEY,
    fan_id   uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    class    text,           -- NULL: the override was cleared
    previous text NOT NULL,  -- the class before
    note     text NOT NULL,
    set_by   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
ALTER TABLE redemptions DROP COLUMN by_agent;
DROP TABLE bot_override_log, bot_overrides, reseller_watch, social_ties, bot_evidence;
DELETE FROM queue_entries WHERE classification = 'suspect';
UPDATE fan_classifications SET class = 'human' WHERE class = 'suspect';
ALTER TABLE queue_entries DROP CONSTRAINT queue_entries_classification_check,
    ADD CONSTRAINT queue_entries_classification_check CHECK (classification IN ('human', 'automated', 'unknown'));
ALTER TABLE fan_classifications DROP CONSTRAINT fan_classifications_class_check,
    ADD CONSTRAINT fan_classifications_class_check CHECK (class IN ('human', 'automated', 'unknown')),
    DROP COLUMN reasons, DROP COLUMN overridden;

-- +goose Up
-- Rules as marketers write them (F9): the whole rule is kept as JSON, with
-- every version, so an offer's rule_version names exactly what issued it.
ALTER TABLE rules ADD COLUMN body jsonb;
UPDATE rules SET body = jsonb_build_object('id', id, 'version', version, 'performer_id', performer_id,
    'show_id', show_id, 'tiers', tiers, 'channels', to_jsonb(channels), 'lifetime', lifetime_seconds || 's');
ALTER TABLE rules ALTER COLUMN body SET NOT NULL, ALTER COLUMN body SET DEFAULT '{}';

CREATE TABLE rule_versions (
    rule_id    text NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version    integer NOT NULL,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);
INSERT INTO rule_versions (rule_id, version, body) SELECT id, version, body FROM rules;

-- A rule's total budget of offers, counted as checkpoints write them: the
-- database decides which crossing gets the last one, whatever partition it is in.
CREATE TABLE rule_budgets (
    rule_id text PRIMARY KEY REFERENCES rules (id) ON DELETE CASCADE,
    budget  integer NOT NULL CHECK (budget > 0),
    issued  integer NOT NULL DEFAULT 0 CHECK (issued <= budget)
);

-- Quiet hours held the offer: deliver it no sooner.
ALTER TABLE offers ADD COLUMN deliver_after timestamptz;

-- Why crossings issued no offer (F10): one row when a (fan, rule, tier)'s
-- reason changes. Erasure deletes a fan's rows itself (no foreign key on the
-- checkpoint's path, as for contributions).
CREATE TABLE offer_decisions (
    fan_id       uuid NOT NULL,
    rule_id      text NOT NULL,
    rule_version integer NOT NULL,
    tier         integer NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    index_value  double precision NOT NULL,
    event_id     text NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX offer_decisions_fan ON offer_decisions (fan_id, rule_id, at);
CREATE INDEX offer_decisions_rule ON offer_decisions (rule_id, tier, reason);

-- +goose Down
DROP TABLE offer_decisions;
ALTER TABLE offers DROP COLUMN deliver_after;
DROP TABLE rule_budgets, rule_versions;
ALTER TABLE rules DROP COLUMN body;

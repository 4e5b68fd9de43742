-- +goose Up
-- Declared agents (F15): software a fan authorized, through a partner, to
-- act for them. The credential is stored only as its hash.
CREATE TABLE fan_agents (
    id         uuid PRIMARY KEY,
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    partner_id text NOT NULL REFERENCES partners (id),
    name       text NOT NULL,
    scopes     text[] NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX fan_agents_fan ON fan_agents (fan_id);

-- Every action an agent took, attributed to the fan and the agent.
CREATE TABLE agent_actions (
    id       bigserial PRIMARY KEY,
    agent_id uuid NOT NULL REFERENCES fan_agents (id) ON DELETE CASCADE,
    fan_id   uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    action   text NOT NULL,
    subject  text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE redemptions ADD COLUMN agent_id uuid REFERENCES fan_agents (id) ON DELETE SET NULL;

-- +goose Down
ALTER TABLE redemptions DROP COLUMN agent_id;
DROP TABLE agent_actions, fan_agents;

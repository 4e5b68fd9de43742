-- +goose Up
-- Tenancy (F23): marketer organizations own performers and scoring profiles,
-- and reach them with API tokens that carry the organization and a role.
CREATE TABLE organizations (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    org_id       text NOT NULL REFERENCES organizations (id),
    role         text NOT NULL CHECK (role IN ('admin', 'marketer', 'viewer')),
    name         text NOT NULL,
    -- SHA-256 of the token: the token itself is never stored.
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_org ON api_tokens (org_id);

-- NULL: no organization yet; partner flows and seeds keep working.
ALTER TABLE performers ADD COLUMN org_id text REFERENCES organizations (id);
CREATE INDEX performers_org ON performers (org_id);

-- NULL: a built-in profile ("default"), readable by every organization and
-- changed by none over the API. An organization's profile is stored under
-- "<org id>/<name>", so each organization names its profiles freely and one
-- cannot learn another's names by trying to create them.
ALTER TABLE scoring_profiles
    ADD COLUMN org_id text REFERENCES organizations (id),
    ADD CONSTRAINT scoring_profiles_org_prefix CHECK (org_id IS NULL OR starts_with(id, org_id || '/'));
CREATE INDEX scoring_profiles_org ON scoring_profiles (org_id);

-- +goose Down
ALTER TABLE scoring_profiles DROP CONSTRAINT scoring_profiles_org_prefix, DROP COLUMN org_id;
ALTER TABLE performers DROP COLUMN org_id;
DROP TABLE api_tokens, organizations;

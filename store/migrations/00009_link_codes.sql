-- +goose Up
-- One-time codes that link a fan's account at another partner to the same fan
-- (F1): partner A shows its signed-in user a code, the user enters it at
-- partner B, and B registers its user with it. Only a hash is kept.
CREATE TABLE link_codes (
    code_hash       bytea PRIMARY KEY,
    fan_id          uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    partner_id      text NOT NULL,
    partner_user_id text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX link_codes_fan ON link_codes (fan_id);

-- +goose Down
DROP TABLE link_codes;

-- +goose Up
-- F1: what a fan registers beyond contact points.
ALTER TABLE fans
    ADD COLUMN home_lat double precision CHECK (home_lat BETWEEN -90 AND 90),
    ADD COLUMN home_lon double precision CHECK (home_lon BETWEEN -180 AND 180),
    ADD COLUMN push_enabled boolean NOT NULL DEFAULT true;

-- F2: the signal kinds a linked account may contribute; NULL means every kind.
ALTER TABLE linked_accounts ADD COLUMN scope text[];

-- F2: every grant, narrowing and withdrawal, append-only: who, when, from where, with what wording.
CREATE TABLE consent_ledger (
    id              bigserial PRIMARY KEY,
    fan_id          uuid NOT NULL,
    partner_id      text NOT NULL,
    partner_user_id text NOT NULL,
    action          text NOT NULL CHECK (action IN ('grant', 'change', 'withdraw', 'erase')),
    scope           text[],
    wording         text NOT NULL DEFAULT '',
    actor           text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_ledger_fan ON consent_ledger (fan_id, recorded_at);

-- F3: erased fans by id only, so partition owners drop what they hold in memory
-- and leave the fan out of their next snapshot.
CREATE TABLE erased_fans (
    fan_id    uuid PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify_directory() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('crescendo_directory', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

-- Consent changes take effect at once: every replica reloads its directory on this notification.
CREATE TRIGGER linked_accounts_notify AFTER INSERT OR UPDATE OR DELETE ON linked_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_directory();
CREATE TRIGGER partners_notify AFTER INSERT OR UPDATE OR DELETE ON partners
    FOR EACH STATEMENT EXECUTE FUNCTION notify_directory();
CREATE TRIGGER rules_notify AFTER INSERT OR UPDATE OR DELETE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION notify_directory();

-- +goose Down
DROP TRIGGER rules_notify ON rules;
DROP TRIGGER partners_notify ON partners;
DROP TRIGGER linked_accounts_notify ON linked_accounts;
DROP FUNCTION notify_directory();
DROP TABLE erased_fans, consent_ledger;
ALTER TABLE linked_accounts DROP COLUMN scope;
ALTER TABLE fans DROP COLUMN home_lat, DROP COLUMN home_lon, DROP COLUMN push_enabled;

-- +goose Up
-- A fan's state lives in the partition its home key maps to: the partner user
-- id of the account the fan was registered with, which keys that account's
-- events. It never changes, even if that account is unlinked, so the state
-- never has to move; events of the fan's other accounts are routed to it.
ALTER TABLE fans ADD COLUMN home_key text;

UPDATE fans f SET home_key = l.partner_user_id
FROM (SELECT DISTINCT ON (fan_id) fan_id, partner_user_id FROM linked_accounts
      ORDER BY fan_id, consented_at, partner_id) l
WHERE f.id = l.fan_id;

-- +goose StatementBegin
CREATE FUNCTION set_fan_home() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fans f SET home_key = n.partner_user_id
    FROM (SELECT DISTINCT ON (fan_id) fan_id, partner_user_id FROM new_accounts
          ORDER BY fan_id, partner_id) n
    WHERE f.id = n.fan_id AND f.home_key IS NULL;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- One statement-level trigger covers single links and bulk COPY loads alike.
CREATE TRIGGER linked_accounts_home AFTER INSERT ON linked_accounts
    REFERENCING NEW TABLE AS new_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION set_fan_home();

-- Secrets the replicas share and nobody configures: generated on first use.
CREATE TABLE cluster_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

-- +goose Down
DROP TABLE cluster_secrets;
DROP TRIGGER linked_accounts_home ON linked_accounts;
DROP FUNCTION set_fan_home();
ALTER TABLE fans DROP COLUMN home_key;

-- +goose Up
-- Feedback (F18): what Twilio and SendGrid tell Crescendo back about the
-- messages it sent, and what fans answer.

-- Every provider webhook Crescendo acted on, by the provider's own
-- de-duplication key (Twilio: MessageSid/MessageStatus or the inbound
-- MessageSid; SendGrid: sg_event_id). Providers retry and repeat webhooks: the
-- key is inserted in the transaction that applies the event, so a repeat
-- changes nothing. A receipt saying a message did not reach its recipient
-- (failure) is kept with the message's id, so an offer whose send is recorded
-- only after its receipt arrived is still moved on (ReopenUndelivered).
CREATE TABLE webhook_events (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL CHECK (provider IN ('twilio', 'sendgrid')),
    key         text NOT NULL,
    -- Twilio: the MessageStatus, or 'inbound'; SendGrid: the event.
    kind        text NOT NULL,
    -- Twilio's Message SID or SendGrid's X-Message-Id the event is about.
    message_id  text,
    failure     boolean NOT NULL DEFAULT false,
    detail      text,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, key)
);
CREATE INDEX webhook_events_failures ON webhook_events (message_id) WHERE failure;
CREATE INDEX webhook_events_received ON webhook_events (received_at);

-- Contact points Crescendo must not send to: STOP, unsubscribes, spam
-- reports, hard bounces. A row is lifted (START), never deleted, so the
-- history stays; at most one row per contact point is active. Addresses are
-- E.164 phone numbers and lower-case email addresses; they belong to no fan,
-- so an erasure leaves them and an opted-out number stays opted out.
CREATE TABLE suppressions (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('sms', 'email')),
    address     text NOT NULL CHECK (address <> ''),
    reason      text NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    lifted_at   timestamptz,
    lift_source text,
    CHECK ((lifted_at IS NULL) = (lift_source IS NULL))
);
CREATE UNIQUE INDEX suppressions_active ON suppressions (channel, address) WHERE lifted_at IS NULL;

-- What the provider last reported about the offer's current send, and how
-- many times a failed send sent the offer back to its next channel.
ALTER TABLE offers
    ADD COLUMN provider_status    text,
    ADD COLUMN provider_status_at timestamptz,
    ADD COLUMN redeliveries       integer NOT NULL DEFAULT 0;
CREATE INDEX offers_provider_id ON offers (provider_id) WHERE provider_id IS NOT NULL;

-- Opt-outs and opt-ins through a channel (STOP, START, unsubscribe) are
-- consent changes too: the ledger says which channel and address, and where
-- the request came from. A number or address no fan has still gets its row,
-- without a fan.
ALTER TABLE consent_ledger
    ALTER COLUMN fan_id DROP NOT NULL,
    ADD COLUMN channel text,
    ADD COLUMN address text,
    ADD COLUMN source  text,
    DROP CONSTRAINT consent_ledger_action_check,
    ADD CONSTRAINT consent_ledger_action_check
        CHECK (action IN ('grant', 'change', 'withdraw', 'erase', 'opt_out', 'opt_in'));
CREATE INDEX consent_ledger_address ON consent_ledger (channel, address) WHERE address IS NOT NULL;
-- An opt-out finds the fans who have the number or address.
CREATE INDEX fans_phone ON fans (phone) WHERE phone IS NOT NULL;
CREATE INDEX fans_email ON fans (lower(email)) WHERE email IS NOT NULL;

-- +goose Down
-- The old ledger has no place for channel opt-outs: going down drops them.
DROP INDEX fans_email, fans_phone, consent_ledger_address;
DELETE FROM consent_ledger WHERE action IN ('opt_out', 'opt_in');
ALTER TABLE consent_ledger
    DROP CONSTRAINT consent_ledger_action_check,
    ADD CONSTRAINT consent_ledger_action_check CHECK (action IN ('grant', 'change', 'withdraw', 'erase')),
    DROP COLUMN source,
    DROP COLUMN address,
    DROP COLUMN channel,
    ALTER COLUMN fan_id SET NOT NULL;
DROP INDEX offers_provider_id;
ALTER TABLE offers
    DROP COLUMN redeliveries,
    DROP COLUMN provider_status_at,
    DROP COLUMN provider_status;
DROP TABLE suppressions, webhook_events;

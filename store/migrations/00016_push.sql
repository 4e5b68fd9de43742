-- +goose Up
-- In-app pushes (F16). Every push is appended here first: its seq is the SSE
-- `id:` of the event, and a stream that resumes with Last-Event-ID N reads the
-- fan's pushes after N. Appends for one fan are serialized (a lock on the
-- fan's row) and the sequence hands out numbers in the order they are asked
-- for (CACHE 1, the default: keep it), so a fan's pushes become visible in seq
-- order and a reader that has seen seq N never sees a smaller one appear later.
-- Erased with the fan.
CREATE TABLE push_messages (
    seq        bigserial PRIMARY KEY,
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    offer_id   uuid REFERENCES offers (id) ON DELETE CASCADE,
    event      text NOT NULL CHECK (event ~ '^[A-Za-z0-9_.-]{1,64}$'),
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_messages_fan ON push_messages (fan_id, seq);
CREATE INDEX push_messages_created ON push_messages (created_at);
-- A delivery job that runs again pushes its offer once.
CREATE UNIQUE INDEX push_messages_offer ON push_messages (offer_id, event) WHERE offer_id IS NOT NULL;

-- A partner backend's webhook: pushes for the partner's users are POSTed to it,
-- signed with the secret. The secret is sealed (AES-256-GCM) with a key that is
-- not in this table, and never logged.
CREATE TABLE partner_webhooks (
    partner_id text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    url        text NOT NULL CHECK (url LIKE 'https://%' AND length(url) <= 2048),
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One POST of one push to one partner account's webhook, retried with backoff
-- until it is delivered or fails for good. A claimed attempt moves
-- next_attempt_at past its timeout, so an attempt whose process died is
-- retried by another; attempts fences a late answer to a taken-over attempt.
-- Erased with the push, and so with the fan.
CREATE TABLE push_webhook_deliveries (
    id              bigserial PRIMARY KEY,
    seq             bigint NOT NULL REFERENCES push_messages (seq) ON DELETE CASCADE,
    partner_id      text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    partner_user_id text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    UNIQUE (seq, partner_id, partner_user_id)
);
CREATE INDEX push_webhook_deliveries_due ON push_webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- Which replica holds a stream open for which fan, so that any replica can
-- tell whether the fan is in the app. Each replica renews its rows well
-- before they expire and deletes a fan's row when its last stream closes; the
-- rows of a replica that died expire. Unlogged: after a database crash the
-- replicas write their rows again at the next renewal.
CREATE UNLOGGED TABLE push_presence (
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    replica_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (fan_id, replica_id)
);
CREATE INDEX push_presence_replica ON push_presence (replica_id);

-- +goose Down
DROP TABLE push_presence, push_webhook_deliveries, partner_webhooks, push_messages;

-- +goose Up
-- Partners publish activity; their id is the CloudEvents `source` they send.
CREATE TABLE partners (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    -- SHA-256 of the partner's API key: the key itself is never stored.
    api_key_hash bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE performers (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shows (
    id           text PRIMARY KEY,
    performer_id text NOT NULL REFERENCES performers (id),
    name         text NOT NULL,
    starts_at    timestamptz NOT NULL,
    venue_name   text NOT NULL,
    venue_lat    double precision NOT NULL CHECK (venue_lat BETWEEN -90 AND 90),
    venue_lon    double precision NOT NULL CHECK (venue_lon BETWEEN -180 AND 180),
    onsale_start timestamptz,
    onsale_end   timestamptz
);

CREATE TABLE fans (
    id           uuid PRIMARY KEY,
    display_name text NOT NULL DEFAULT '',
    phone        text,
    email        text,
    time_zone    text NOT NULL DEFAULT 'UTC',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A fan's account at a partner app; events name the account, this row names the fan.
CREATE TABLE linked_accounts (
    partner_id      text NOT NULL REFERENCES partners (id),
    partner_user_id text NOT NULL,
    fan_id          uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    consented_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, partner_user_id)
);
CREATE INDEX linked_accounts_fan ON linked_accounts (fan_id);
CREATE INDEX linked_accounts_updated ON linked_accounts (updated_at);

CREATE TABLE rules (
    id               text PRIMARY KEY,
    version          integer NOT NULL DEFAULT 1,
    performer_id     text NOT NULL REFERENCES performers (id),
    show_id          text NOT NULL REFERENCES shows (id),
    -- tiers: [{"threshold": 20, "perks": ["presale"]}, ...] ordered by threshold.
    tiers            jsonb NOT NULL,
    window_days      integer NOT NULL DEFAULT 7 CHECK (window_days BETWEEN 1 AND 7),
    channels         text[] NOT NULL,
    lifetime_seconds integer NOT NULL CHECK (lifetime_seconds > 0),
    active           boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The next offset to read per partition, written in the same transaction as the
-- state it covers: this row, not Kafka's group offset, is where a consumer resumes.
CREATE TABLE consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Listening seconds per day for the rolling window, owned by the partition that
-- carries the fan's account.
CREATE TABLE listening_state (
    group_id     text NOT NULL,
    partition    integer NOT NULL,
    fan_id       uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    performer_id text NOT NULL,
    last_day     integer NOT NULL,
    -- WindowDays little-endian uint32 seconds, a ring indexed by day number.
    seconds      bytea NOT NULL,
    PRIMARY KEY (group_id, partition, fan_id, performer_id)
);

CREATE TABLE session_state (
    group_id   text NOT NULL,
    partition  integer NOT NULL,
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (group_id, partition, fan_id)
);

CREATE TABLE offers (
    id           uuid PRIMARY KEY,
    fan_id       uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    rule_id      text NOT NULL REFERENCES rules (id),
    rule_version integer NOT NULL,
    tier         integer NOT NULL,
    performer_id text NOT NULL,
    show_id      text NOT NULL,
    perks        text[] NOT NULL,
    index_value  double precision NOT NULL,
    event_id     text NOT NULL,
    partition    integer NOT NULL,
    status       text NOT NULL DEFAULT 'issued'
                 CHECK (status IN ('issued', 'delivered', 'failed', 'expired')),
    channel      text,
    provider_id  text,
    status_reason text,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    delivered_at timestamptz,
    -- Exactly one offer per (fan, rule, tier), whatever the code above does.
    UNIQUE (fan_id, rule_id, tier)
);
CREATE INDEX offers_open_expiry ON offers (expires_at) WHERE status IN ('issued', 'delivered');

CREATE TABLE delivery_attempts (
    id           bigserial PRIMARY KEY,
    offer_id     uuid NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    channel      text NOT NULL,
    outcome      text NOT NULL,
    provider_id  text,
    detail       text,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_offer ON delivery_attempts (offer_id);

CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text NOT NULL DEFAULT 'running',
    rows        bigint NOT NULL DEFAULT 0,
    error       text
);
CREATE INDEX job_runs_job ON job_runs (job, started_at DESC);

-- +goose Down
DROP TABLE job_runs, delivery_attempts, offers, session_state, listening_state,
    consumer_offsets, rules, linked_accounts, fans, shows, performers, partners;

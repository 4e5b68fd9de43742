-- +goose Up
-- Partner HTTP ingestion (F23). Each partner signs its batches with a secret
-- of its own, sealed here (AES-256-GCM, key not in this table) because the
-- signature check needs the secret itself; it is shown to the partner once.
CREATE TABLE partner_ingest_secrets (
    partner_id text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per Idempotency-Key a partner sent: a retried batch gets the stored
-- answer instead of being produced again. A pending row is a batch being
-- produced; one left pending by a process that died is taken over after a while.
CREATE TABLE ingest_requests (
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    body_sha256 bytea NOT NULL,
    status      integer,
    response    bytea,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (partner_id, key)
);
CREATE INDEX ingest_requests_claimed ON ingest_requests (claimed_at);

-- +goose Down
DROP TABLE ingest_requests;
DROP TABLE partner_ingest_secrets;

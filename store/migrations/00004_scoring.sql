-- +goose Up
-- The full index (F4): profiles, what scoring knows of performers, and the
-- contributions behind every pair's index (F6).
CREATE TABLE scoring_profiles (
    id         text PRIMARY KEY,
    body       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE performers
    ADD COLUMN aliases text[] NOT NULL DEFAULT '{}',
    ADD COLUMN charities text[] NOT NULL DEFAULT '{}',
    ADD COLUMN profile_id text REFERENCES scoring_profiles (id);

-- Listening windows are the scoring profile's business now.
ALTER TABLE rules DROP COLUMN window_days;

-- One row per event that earned a pair points; append-only, written with the
-- checkpoint that covers the event.
CREATE TABLE contributions (
    fan_id       uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    performer_id text NOT NULL,
    signal       text NOT NULL,
    points       double precision NOT NULL,
    event_id     text NOT NULL,
    at           timestamptz NOT NULL,
    detail       text NOT NULL DEFAULT ''
);
CREATE INDEX contributions_pair ON contributions (fan_id, performer_id, at);

-- The latest friend count per fan, behind the human point.
CREATE TABLE fan_facts (
    fan_id       uuid PRIMARY KEY REFERENCES fans (id) ON DELETE CASCADE,
    friend_count bigint NOT NULL,
    event_id     text NOT NULL,
    at           timestamptz NOT NULL
);

CREATE TRIGGER performers_notify AFTER INSERT OR UPDATE OR DELETE ON performers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_directory();
CREATE TRIGGER scoring_profiles_notify AFTER INSERT OR UPDATE OR DELETE ON scoring_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_directory();
CREATE TRIGGER shows_notify AFTER INSERT OR UPDATE OR DELETE ON shows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_directory();

-- +goose Down
DROP TRIGGER shows_notify ON shows;
DROP TRIGGER scoring_profiles_notify ON scoring_profiles;
DROP TRIGGER performers_notify ON performers;
DROP TABLE fan_facts, contributions;
ALTER TABLE rules ADD COLUMN window_days integer NOT NULL DEFAULT 7;
ALTER TABLE performers DROP COLUMN profile_id, DROP COLUMN charities, DROP COLUMN aliases;
DROP TABLE scoring_profiles;

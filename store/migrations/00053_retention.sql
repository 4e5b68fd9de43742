-- +goose Up
-- Retention (F20): per-event records and delivery attempts older than the
-- configured age are purged; an offer keeps a summary of its attempts for
-- audit. BRIN indexes, because these rows arrive in time order and the purge
-- is the only reader by time: they cost the checkpoint's inserts next to nothing.
ALTER TABLE offers ADD COLUMN attempt_summary jsonb;
CREATE INDEX contributions_at_brin ON contributions USING brin (at);
CREATE INDEX offer_decisions_at_brin ON offer_decisions USING brin (at);
CREATE INDEX conversions_at_brin ON conversions USING brin (at);
CREATE INDEX offers_expires_brin ON offers USING brin (expires_at);

-- +goose Down
DROP INDEX offers_expires_brin, conversions_at_brin, offer_decisions_at_brin, contributions_at_brin;
ALTER TABLE offers DROP COLUMN attempt_summary;

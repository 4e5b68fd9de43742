-- +goose Up
-- Every reader of contributions finds them by fan (the explanation API, the
-- console's per-fan rows, erasure) and filters the rest in memory; none scans
-- a range of fans or relies on the btree's order by time. A hash index on
-- fan_id serves them all and costs the checkpoint's COPY about a third less
-- backend CPU than the (fan_id, performer_id, at) btree: 0.80-0.88 s against
-- 1.17 s for 183,000 rows in 600-row transactions on PostgreSQL 15.
DROP INDEX contributions_pair;
CREATE INDEX contributions_fan_hash ON contributions USING hash (fan_id);

-- +goose Down
DROP INDEX contributions_fan_hash;
CREATE INDEX contributions_pair ON contributions (fan_id, performer_id, at);

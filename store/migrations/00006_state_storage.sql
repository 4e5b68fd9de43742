-- +goose Up
-- State chunks are varint-packed and mostly random UUIDs: pglz spends CPU on
-- every checkpoint for little gain. Store them out of line, uncompressed.
ALTER TABLE partition_state ALTER COLUMN data SET STORAGE EXTERNAL;

-- +goose Down
ALTER TABLE partition_state ALTER COLUMN data SET STORAGE EXTENDED;

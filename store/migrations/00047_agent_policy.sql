-- +goose Up
-- A sale's agent policy (F15): hold (agents join from one batch interval
-- after opening) or bar (no agents).
ALTER TABLE sales ADD COLUMN agents text NOT NULL DEFAULT 'hold' CHECK (agents IN ('hold', 'bar'));

-- +goose Down
ALTER TABLE sales DROP COLUMN agents;

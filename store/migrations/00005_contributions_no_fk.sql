-- +goose Up
-- A foreign key costs a lookup in fans for every contribution COPY writes, on
-- the checkpoint's critical path; erasure deletes a fan's contributions itself.
ALTER TABLE contributions DROP CONSTRAINT contributions_fan_id_fkey;

-- +goose Down
DELETE FROM contributions c WHERE NOT EXISTS (SELECT 1 FROM fans f WHERE f.id = c.fan_id);
ALTER TABLE contributions ADD CONSTRAINT contributions_fan_id_fkey FOREIGN KEY (fan_id) REFERENCES fans (id) ON DELETE CASCADE;

-- +goose Up
-- Every replica's cron fires for the same activation of a job; the run history
-- tells which activation was served (the last scheduled run's start) and by
-- which process, and runs asked by hand do not count as served activations.
ALTER TABLE job_runs
    ADD COLUMN scheduled boolean NOT NULL DEFAULT true,
    ADD COLUMN instance  text NOT NULL DEFAULT '';
CREATE INDEX job_runs_scheduled ON job_runs (job, started_at DESC) WHERE scheduled;

-- +goose Down
DROP INDEX job_runs_scheduled;
ALTER TABLE job_runs DROP COLUMN instance, DROP COLUMN scheduled;

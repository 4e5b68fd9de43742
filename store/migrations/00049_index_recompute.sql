-- +goose Up
-- The scheduled recomputation of the index (F5, F20). Partition state belongs
-- to the partition's owner, so the job does not rewrite it: it records a
-- request, and each owner folds decay into its pairs, snapshots them and
-- acknowledges the request in that checkpoint's transaction.
CREATE TABLE index_recomputes (
    id           bigserial PRIMARY KEY,
    requested_at timestamptz NOT NULL
);
CREATE TABLE index_recompute_acks (
    request_id bigint NOT NULL REFERENCES index_recomputes (id) ON DELETE CASCADE,
    group_id   text NOT NULL,
    partition  integer NOT NULL,
    pairs      bigint NOT NULL,
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, group_id, partition)
);

-- +goose Down
DROP TABLE index_recompute_acks, index_recomputes;

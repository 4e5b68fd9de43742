package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecomputeAck is a partition owner's answer to a recomputation request,
// written in the checkpoint that holds the recomputed snapshot.
type RecomputeAck struct {
	Request int64
	Pairs   int
}

// RequestRecompute records a request that every partition owner recompute
// its pairs (fold decay in, snapshot) and tells them at once through the
// directory's channel. It returns the request's id.
func (s *Store) RequestRecompute(ctx context.Context, now time.Time) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO index_recomputes (requested_at) VALUES ($1) RETURNING id`, now).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify('crescendo_directory', 'index_recomputes')`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("requesting recomputation: %w", err)
	}
	return id, nil
}

// RecomputeProgress returns how many partitions of group's topic have
// acknowledged request out of how many the group has ever owned, and how
// many pairs they recomputed.
func (s *Store) RecomputeProgress(ctx context.Context, request int64, group, topic string) (done, total int, pairs int64, err error) {
	if err := s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(sum(pairs), 0),
			(SELECT count(*) FROM consumer_offsets WHERE group_id = $2 AND topic = $3)
		FROM index_recompute_acks WHERE request_id = $1 AND group_id = $2`,
		request, group, topic).Scan(&done, &pairs, &total); err != nil {
		return 0, 0, 0, fmt.Errorf("reading recomputation progress: %w", err)
	}
	return done, total, pairs, nil
}

// latestRecompute is the newest recomputation request, 0 when none.
func (s *Store) latestRecompute(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM index_recomputes`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading recomputation requests: %w", err)
	}
	return id, nil
}

// RecomputeRequested returns the newest recomputation request the directory
// has seen (0 for none); owners recompute once for each new one.
func (d *Directory) RecomputeRequested() int64 { return d.snap.Load().recompute }

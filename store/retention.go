package store

import (
	"context"
	"fmt"
	"time"
)

// retentionBatch bounds each purge statement, so that a first purge of a
// large backlog neither holds locks for long nor writes one huge transaction.
const retentionBatch = 5000

// Purged counts what one retention pass removed.
type Purged struct {
	Contributions, Decisions, Conversions int64
	// Attempts is how many delivery attempts were folded into their offers' summaries.
	Attempts int64
}

// Total is every row the pass removed.
func (p Purged) Total() int64 { return p.Contributions + p.Decisions + p.Conversions + p.Attempts }

// PurgeBefore removes the per-event records (contributions, offer decisions,
// conversions) from before cutoff, and the delivery attempts of offers that
// expired before it. Each such offer keeps attempt_summary: how many attempts,
// on which channels, with which outcomes, first and last, so an audit still
// reads how it was delivered. Indexes and offers themselves stay: they are
// aggregates, not events. It works in batches until nothing is left, and
// stops early, keeping what it did, when ctx ends.
func (s *Store) PurgeBefore(ctx context.Context, cutoff time.Time) (Purged, error) {
	var p Purged
	for _, t := range []struct {
		table string
		n     *int64
	}{{"contributions", &p.Contributions}, {"offer_decisions", &p.Decisions}, {"conversions", &p.Conversions}} {
		for {
			tag, err := s.pool.Exec(ctx, `DELETE FROM `+t.table+` WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM `+t.table+` WHERE at < $1 LIMIT $2))`, cutoff, retentionBatch)
			if err != nil {
				return p, fmt.Errorf("purging %s: %w", t.table, err)
			}
			*t.n += tag.RowsAffected()
			if tag.RowsAffected() < retentionBatch {
				break
			}
		}
	}
	for {
		var n int64
		// One statement summarizes a batch of offers and deletes what it
		// summarized, so an attempt is never gone without its summary.
		err := s.pool.QueryRow(ctx, `WITH batch AS (
				SELECT DISTINCT a.offer_id AS id FROM delivery_attempts a JOIN offers o ON o.id = a.offer_id
				WHERE o.expires_at < $1 LIMIT $2
			), per_outcome AS (
				SELECT a.offer_id, a.outcome, count(*) AS n FROM delivery_attempts a JOIN batch b ON b.id = a.offer_id
				GROUP BY a.offer_id, a.outcome
			), summary AS (
				SELECT a.offer_id, jsonb_build_object(
					'attempts', count(*),
					'channels', jsonb_agg(DISTINCT a.channel),
					'outcomes', (SELECT jsonb_object_agg(p.outcome, p.n) FROM per_outcome p WHERE p.offer_id = a.offer_id),
					'first_attempt_at', min(a.attempted_at),
					'last_attempt_at', max(a.attempted_at)) AS s
				FROM delivery_attempts a JOIN batch b ON b.id = a.offer_id GROUP BY a.offer_id
			), kept AS (
				UPDATE offers o SET attempt_summary = summary.s FROM summary WHERE o.id = summary.offer_id RETURNING o.id
			), gone AS (
				DELETE FROM delivery_attempts a USING kept WHERE a.offer_id = kept.id RETURNING 1
			)
			SELECT count(*) FROM gone`, cutoff, retentionBatch/10).Scan(&n)
		if err != nil {
			return p, fmt.Errorf("summarizing delivery attempts: %w", err)
		}
		p.Attempts += n
		if n == 0 {
			return p, nil
		}
	}
}

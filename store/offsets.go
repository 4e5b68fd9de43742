package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// StoredOffsets returns the next offset to read of every partition of topic
// the group has loaded, as its last durable checkpoint left it (OffsetStart
// for one loaded but never checkpointed).
func (s *Store) StoredOffsets(ctx context.Context, group, topic string) (map[int]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT partition, next_offset FROM consumer_offsets
		WHERE group_id = $1 AND topic = $2`, group, topic)
	if err != nil {
		return nil, fmt.Errorf("reading stored offsets: %w", err)
	}
	out := map[int]int64{}
	var p int
	var next int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &next}, func() error {
		out[p] = next
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading stored offsets: %w", err)
	}
	return out, nil
}

package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/index"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/sessions"
)

// OffsetStart is the stored offset of a partition nobody has checkpointed yet:
// read it from its first offset.
const OffsetStart int64 = -2

// ErrFenced is returned by Checkpoint when another owner moved the partition's
// offset since this one loaded it: this owner's state is stale and must be reloaded.
var ErrFenced = errors.New("partition offset moved by another owner")

// PartitionID names one partition of one topic as read by one consumer group.
type PartitionID struct {
	Group     string
	Topic     string
	Partition int
}

// LoadPartition returns a partition's durable state and the next offset to read.
func (s *Store) LoadPartition(ctx context.Context, p PartitionID) (pipeline.State, int64, error) {
	st := pipeline.State{
		Listening: make(map[index.Key]index.Counter),
		Sessions:  make(map[uuid.UUID]sessions.Session),
	}
	var next int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, p.Group, p.Topic, p.Partition, OffsetStart); err != nil {
			return fmt.Errorf("initializing offset: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT next_offset FROM consumer_offsets
			WHERE group_id = $1 AND topic = $2 AND partition = $3`, p.Group, p.Topic, p.Partition).Scan(&next); err != nil {
			return fmt.Errorf("reading offset: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT fan_id, performer_id, last_day, seconds FROM listening_state
			WHERE group_id = $1 AND partition = $2`, p.Group, p.Partition)
		if err != nil {
			return fmt.Errorf("reading listening state: %w", err)
		}
		var (
			fan       uuid.UUID
			performer string
			lastDay   int32
			raw       []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&fan, &performer, &lastDay, &raw}, func() error {
			c, err := decodeCounter(lastDay, raw)
			if err != nil {
				return err
			}
			st.Listening[index.Key{Fan: fan, Performer: performer}] = c
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading listening state: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT fan_id, started_at, last_at FROM session_state
			WHERE group_id = $1 AND partition = $2`, p.Group, p.Partition)
		if err != nil {
			return fmt.Errorf("reading sessions: %w", err)
		}
		var ss sessions.Session
		if _, err := pgx.ForEachRow(rows, []any{&fan, &ss.Start, &ss.Last}, func() error {
			st.Sessions[fan] = ss
			return nil
		}); err != nil {
			return fmt.Errorf("reading sessions: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT fan_id, rule_id, tier FROM offers WHERE partition = $1`, p.Partition)
		if err != nil {
			return fmt.Errorf("reading issued offers: %w", err)
		}
		var k offers.Key
		if _, err := pgx.ForEachRow(rows, []any{&k.Fan, &k.Rule, &k.Tier}, func() error {
			st.Issued = append(st.Issued, k)
			return nil
		}); err != nil {
			return fmt.Errorf("reading issued offers: %w", err)
		}
		return nil
	})
	if err != nil {
		return pipeline.State{}, 0, fmt.Errorf("loading partition %d: %w", p.Partition, err)
	}
	return st, next, nil
}

// Checkpoint is one partition's batch of effects and the offset range they cover.
type Checkpoint struct {
	PartitionID
	// From is the offset the owner loaded or last checkpointed; To is the next offset to read.
	From, To int64
	Delta    pipeline.Delta
}

// EnqueueFunc queues deliveries for newly inserted offers inside the checkpoint's
// transaction, so an offer is never issued without its delivery job or the reverse.
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, offerIDs []uuid.UUID) error

// Commit writes a checkpoint in one transaction: the state delta, the new offers
// (at most one per fan, rule and tier: duplicates are skipped by the database),
// their delivery jobs, and the new offset. It returns the ids of the offers that
// were inserted, or ErrFenced if the stored offset is no longer c.From.
func (s *Store) Commit(ctx context.Context, c Checkpoint, enqueue EnqueueFunc) ([]uuid.UUID, error) {
	var inserted []uuid.UUID
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		inserted = inserted[:0]
		tag, err := tx.Exec(ctx, `UPDATE consumer_offsets SET next_offset = $5, updated_at = now()
			WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4`,
			c.Group, c.Topic, c.Partition, c.From, c.To)
		if err != nil {
			return fmt.Errorf("advancing offset: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrFenced
		}
		if err := writeListening(ctx, tx, c); err != nil {
			return err
		}
		if err := writeSessions(ctx, tx, c); err != nil {
			return err
		}
		for _, o := range c.Delta.Offers {
			var id uuid.UUID
			err := tx.QueryRow(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
					perks, index_value, event_id, partition, issued_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
				ON CONFLICT (fan_id, rule_id, tier) DO NOTHING RETURNING id`,
				o.ID, o.FanID, o.RuleID, o.RuleVersion, o.Tier, o.PerformerID, o.ShowID,
				o.Perks, o.IndexValue, o.EventID, c.Partition, o.IssuedAt, o.ExpiresAt).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("inserting offer: %w", err)
			}
			inserted = append(inserted, id)
		}
		if len(inserted) > 0 && enqueue != nil {
			if err := enqueue(ctx, tx, inserted); err != nil {
				return fmt.Errorf("queueing deliveries: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

func writeListening(ctx context.Context, tx pgx.Tx, c Checkpoint) error {
	n := len(c.Delta.Listening)
	if n == 0 {
		return nil
	}
	fans := make([]uuid.UUID, 0, n)
	performers := make([]string, 0, n)
	days := make([]int32, 0, n)
	secs := make([][]byte, 0, n)
	for k, ctr := range c.Delta.Listening {
		fans = append(fans, k.Fan)
		performers = append(performers, k.Performer)
		days = append(days, ctr.LastDay)
		secs = append(secs, encodeCounter(ctr))
	}
	_, err := tx.Exec(ctx, `INSERT INTO listening_state (group_id, partition, fan_id, performer_id, last_day, seconds)
		SELECT $1, $2, f, p, d, s FROM unnest($3::uuid[], $4::text[], $5::int[], $6::bytea[]) AS u(f, p, d, s)
		ON CONFLICT (group_id, partition, fan_id, performer_id)
		DO UPDATE SET last_day = excluded.last_day, seconds = excluded.seconds`,
		c.Group, c.Partition, fans, performers, days, secs)
	if err != nil {
		return fmt.Errorf("writing listening state: %w", err)
	}
	return nil
}

func writeSessions(ctx context.Context, tx pgx.Tx, c Checkpoint) error {
	n := len(c.Delta.Sessions)
	if n == 0 {
		return nil
	}
	fans := make([]uuid.UUID, 0, n)
	starts := make([]time.Time, 0, n)
	lasts := make([]time.Time, 0, n)
	for f, s := range c.Delta.Sessions {
		fans = append(fans, f)
		starts = append(starts, s.Start)
		lasts = append(lasts, s.Last)
	}
	_, err := tx.Exec(ctx, `INSERT INTO session_state (group_id, partition, fan_id, started_at, last_at)
		SELECT $1, $2, f, s, l FROM unnest($3::uuid[], $4::timestamptz[], $5::timestamptz[]) AS u(f, s, l)
		ON CONFLICT (group_id, partition, fan_id)
		DO UPDATE SET started_at = excluded.started_at, last_at = excluded.last_at`,
		c.Group, c.Partition, fans, starts, lasts)
	if err != nil {
		return fmt.Errorf("writing sessions: %w", err)
	}
	return nil
}

func encodeCounter(c index.Counter) []byte {
	b := make([]byte, 4*index.WindowDays)
	for i, s := range c.Seconds {
		binary.LittleEndian.PutUint32(b[4*i:], s)
	}
	return b
}

func decodeCounter(lastDay int32, b []byte) (index.Counter, error) {
	if len(b) != 4*index.WindowDays {
		return index.Counter{}, fmt.Errorf("listening counter has %d bytes, want %d", len(b), 4*index.WindowDays)
	}
	c := index.Counter{LastDay: lastDay}
	for i := range c.Seconds {
		c.Seconds[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return c, nil
}

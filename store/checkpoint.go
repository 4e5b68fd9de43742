package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
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
		Pairs:    make(map[pipeline.PairKey]scoring.PairState),
		Fans:     make(map[uuid.UUID]scoring.FanState),
		Sessions: make(map[uuid.UUID]sessions.Session),
		Routed:   make(map[int32]int64),
	}
	cs := chunkState{pairs: st.Pairs, fans: st.Fans, sessions: st.Sessions, routed: st.Routed}
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
		rows, err := tx.Query(ctx, `SELECT data FROM partition_state WHERE group_id = $1 AND partition = $2 ORDER BY seq`,
			p.Group, p.Partition)
		if err != nil {
			return fmt.Errorf("reading state log: %w", err)
		}
		var data []byte
		if _, err := pgx.ForEachRow(rows, []any{&data}, func() error {
			return decodeChunk(data, cs)
		}); err != nil {
			return fmt.Errorf("reading state log: %w", err)
		}
		// Erased fans may linger in chunks written before their owner dropped them.
		rows, err = tx.Query(ctx, `SELECT fan_id FROM erased_fans`)
		if err != nil {
			return fmt.Errorf("reading erased fans: %w", err)
		}
		erased := map[uuid.UUID]struct{}{}
		var fan uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&fan}, func() error {
			erased[fan] = struct{}{}
			delete(st.Sessions, fan)
			delete(st.Fans, fan)
			return nil
		}); err != nil {
			return fmt.Errorf("reading erased fans: %w", err)
		}
		if len(erased) > 0 {
			for k := range st.Pairs {
				if _, gone := erased[k.Fan]; gone {
					delete(st.Pairs, k)
				}
			}
		}
		rows, err = tx.Query(ctx, `SELECT fan_id, rule_id, tier, issued_at FROM offers WHERE partition = $1`, p.Partition)
		if err != nil {
			return fmt.Errorf("reading issued offers: %w", err)
		}
		var k offers.Key
		var at time.Time
		st.Issued = make(map[offers.Key]time.Time)
		if _, err := pgx.ForEachRow(rows, []any{&k.Fan, &k.Rule, &k.Tier, &at}, func() error {
			st.Issued[k] = at
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
	// Snapshot, when set, is the partition's whole state after Delta: it is
	// written in place of the state log, which then starts again from it.
	Snapshot *pipeline.State
	// Recomputed, when set, acknowledges a recomputation request that Snapshot carries out.
	Recomputed *RecomputeAck
}

// Checkpointer gives a consumer the store's partition loads and checkpoints,
// with delivery jobs queued in each checkpoint's transaction.
type Checkpointer struct {
	Store   *Store
	Enqueue EnqueueFunc
}

// LoadPartition returns a partition's durable state and the next offset to read.
func (c Checkpointer) LoadPartition(ctx context.Context, p PartitionID) (pipeline.State, int64, error) {
	return c.Store.LoadPartition(ctx, p)
}

// Commit writes a checkpoint; see Store.Commit.
func (c Checkpointer) Commit(ctx context.Context, cp Checkpoint) ([]uuid.UUID, error) {
	return c.Store.Commit(ctx, cp, c.Enqueue)
}

// DeliveryJob is an offer to deliver, no sooner than NotBefore (quiet hours).
type DeliveryJob struct {
	OfferID   uuid.UUID
	NotBefore time.Time // zero: now
}

// EnqueueFunc queues deliveries for newly inserted offers inside the checkpoint's
// transaction, so an offer is never issued without its delivery job or the reverse.
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, jobs []DeliveryJob) error

var (
	errOverBudget = errors.New("rule budget spent")
	errNoCodes    = errors.New("presale code pool empty")
)

// insertOffer writes one offer; false when the fan already holds it. A rule
// with a budget counts the offer against it in the same transaction, so
// checkpoints of all partitions share one count.
func insertOffer(ctx context.Context, tx pgx.Tx, o offers.Offer, partition int) (bool, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, issued_at, expires_at, deliver_after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (fan_id, rule_id, tier) DO NOTHING RETURNING id`,
		o.ID, o.FanID, o.RuleID, o.RuleVersion, o.Tier, o.PerformerID, o.ShowID,
		o.Perks, o.IndexValue, o.EventID, partition, o.IssuedAt, o.ExpiresAt, nullTime(o.DeliverAfter)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inserting offer: %w", err)
	}
	// Offers of unbudgeted rules touch no shared row: no contention between partitions.
	tag, err := tx.Exec(ctx, `UPDATE rule_budgets SET issued = issued + 1 WHERE rule_id = $1 AND issued < budget`, o.RuleID)
	if err != nil {
		return false, fmt.Errorf("counting offer against budget: %w", err)
	}
	if tag.RowsAffected() == 0 {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rule_budgets WHERE rule_id = $1)`, o.RuleID).Scan(&exists); err != nil {
			return false, fmt.Errorf("reading budget: %w", err)
		}
		if exists {
			return false, withdraw(ctx, tx, o.ID, errOverBudget)
		}
	}
	// A show with a pool of presale codes gives each offer one. SKIP LOCKED:
	// checkpoints of other partitions take other codes instead of waiting.
	var code string
	err = tx.QueryRow(ctx, `UPDATE presale_codes SET offer_id = $1, assigned_at = now()
		WHERE (show_id, code) = (SELECT show_id, code FROM presale_codes WHERE show_id = $2 AND offer_id IS NULL
			ORDER BY imported_at, code LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING code`, o.ID, o.ShowID).Scan(&code)
	switch {
	case err == nil:
		if _, err := tx.Exec(ctx, `UPDATE offers SET presale_code = $2 WHERE id = $1`, o.ID, code); err != nil {
			return false, fmt.Errorf("recording presale code: %w", err)
		}
	case errors.Is(err, pgx.ErrNoRows):
		var pool bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM presale_codes WHERE show_id = $1)`, o.ShowID).Scan(&pool); err != nil {
			return false, fmt.Errorf("reading presale codes: %w", err)
		}
		if pool {
			return false, withdraw(ctx, tx, o.ID, errNoCodes)
		}
	default:
		return false, fmt.Errorf("taking presale code: %w", err)
	}
	return true, nil
}

// withdraw deletes an offer just inserted that a shared limit refused.
func withdraw(ctx context.Context, tx pgx.Tx, id uuid.UUID, why error) error {
	if _, err := tx.Exec(ctx, `DELETE FROM offers WHERE id = $1`, id); err != nil {
		return fmt.Errorf("withdrawing offer: %w", err)
	}
	return why
}

// writeConversions keeps ticket purchases for the funnel's uplift.
func writeConversions(ctx context.Context, tx pgx.Tx, cs []pipeline.Conversion) error {
	if len(cs) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"conversions"}, []string{"fan_id", "show_id", "event_id", "quantity", "at"},
		pgx.CopyFromSlice(len(cs), func(i int) ([]any, error) {
			c := cs[i]
			return []any{pgtype.UUID{Bytes: c.Fan, Valid: true}, c.ShowID, c.EventID, c.Quantity, c.At}, nil
		}))
	if err != nil {
		return fmt.Errorf("writing conversions: %w", err)
	}
	return nil
}

// writeDecisions keeps why crossings issued no offer (F10).
func writeDecisions(ctx context.Context, tx pgx.Tx, ds []offers.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"offer_decisions"},
		[]string{"fan_id", "rule_id", "rule_version", "tier", "reason", "detail", "index_value", "event_id", "at"},
		pgx.CopyFromSlice(len(ds), func(i int) ([]any, error) {
			d := ds[i]
			return []any{pgtype.UUID{Bytes: d.Fan, Valid: true}, d.Rule, d.RuleVersion, d.Tier, string(d.Reason), d.Detail,
				d.Index, d.EventID, d.At}, nil
		}))
	if err != nil {
		return fmt.Errorf("writing offer decisions: %w", err)
	}
	return nil
}

// Commit writes a checkpoint in one transaction: the state delta, the new offers
// (at most one per fan, rule and tier: duplicates are skipped by the database;
// none past a rule's budget: the decision is recorded instead), their delivery
// jobs, and the new offset. It returns the ids of the offers that were
// inserted, or ErrFenced if the stored offset is no longer c.From.
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
		if err := appendState(ctx, tx, c, s.chunkVersion); err != nil {
			return err
		}
		if a := c.Recomputed; a != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO index_recompute_acks (request_id, group_id, partition, pairs)
				VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, a.Request, c.Group, c.Partition, a.Pairs); err != nil {
				return fmt.Errorf("acknowledging recomputation: %w", err)
			}
		}
		if err := writeExplanations(ctx, tx, c.Delta); err != nil {
			return err
		}
		if err := writeTies(ctx, tx, c.Delta.FanFacts); err != nil {
			return err
		}
		if err := writeClassified(ctx, tx, c.Delta.Classified); err != nil {
			return err
		}
		var jobs []DeliveryJob
		var refused []offers.Decision
		for _, o := range c.Delta.Offers {
			// The consumer gates on its live signals; an account the
			// scheduled job, the watch list or a marketer made automated
			// is refused here (F14).
			if why, automated, err := classifiedAutomated(ctx, tx, o.FanID); err != nil {
				return err
			} else if automated {
				refused = append(refused, offers.Decision{Key: o.Key(), RuleVersion: o.RuleVersion, Reason: offers.ReasonAutomated,
					Detail: why, Index: o.IndexValue, EventID: o.EventID, At: o.IssuedAt})
				continue
			}
			ok, err := insertOffer(ctx, tx, o, c.Partition)
			switch {
			case errors.Is(err, errOverBudget), errors.Is(err, errNoCodes):
				reason := offers.ReasonBudget
				if errors.Is(err, errNoCodes) {
					reason = offers.ReasonCodesExhausted
				}
				refused = append(refused, offers.Decision{Key: o.Key(), RuleVersion: o.RuleVersion, Reason: reason,
					Index: o.IndexValue, EventID: o.EventID, At: o.IssuedAt})
				continue
			case err != nil:
				return err
			case !ok:
				continue
			}
			inserted = append(inserted, o.ID)
			jobs = append(jobs, DeliveryJob{OfferID: o.ID, NotBefore: o.DeliverAfter})
		}
		if err := writeDecisions(ctx, tx, append(refused, c.Delta.Decisions...)); err != nil {
			return err
		}
		if err := writeConversions(ctx, tx, c.Delta.Conversions); err != nil {
			return err
		}
		if len(jobs) > 0 && enqueue != nil {
			if err := enqueue(ctx, tx, jobs); err != nil {
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

// writeExplanations keeps what each event contributed and the latest per-fan
// facts, for the explanation API (F6). COPY keeps the per-event cost low.
func writeExplanations(ctx context.Context, tx pgx.Tx, d pipeline.Delta) error {
	if len(d.Contributions) > 0 {
		data := appendContributionsCopy(make([]byte, 0, len(d.Contributions)*160), d.Contributions)
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), copyContributionsSQL); err != nil {
			return fmt.Errorf("writing contributions: %w", err)
		}
	}
	for _, f := range d.FanFacts {
		if _, err := tx.Exec(ctx, `INSERT INTO fan_facts (fan_id, friend_count, event_id, at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (fan_id) DO UPDATE SET friend_count = excluded.friend_count, event_id = excluded.event_id, at = excluded.at
			WHERE fan_facts.at <= excluded.at`, f.Fan, f.FriendCount, f.EventID, f.At); err != nil {
			return fmt.Errorf("writing fan facts: %w", err)
		}
	}
	return nil
}

// appendState appends the delta to the partition's state log, or replaces the
// log with a snapshot, in chunks of the given version.
func appendState(ctx context.Context, tx pgx.Tx, c Checkpoint, version byte) error {
	var seq int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) + 1 FROM partition_state WHERE group_id = $1 AND partition = $2`,
		c.Group, c.Partition).Scan(&seq); err != nil {
		return fmt.Errorf("reading state log position: %w", err)
	}
	if c.Snapshot != nil {
		if _, err := tx.Exec(ctx, `DELETE FROM partition_state WHERE group_id = $1 AND partition = $2`, c.Group, c.Partition); err != nil {
			return fmt.Errorf("truncating state log: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO partition_state (group_id, partition, seq, kind, data) VALUES ($1, $2, $3, 'snapshot', $4)`,
			c.Group, c.Partition, seq, encodeChunkAs(version, chunkState{pairs: c.Snapshot.Pairs, fans: c.Snapshot.Fans, sessions: c.Snapshot.Sessions, routed: c.Snapshot.Routed})); err != nil {
			return fmt.Errorf("writing state snapshot: %w", err)
		}
		return nil
	}
	d := c.Delta
	if len(d.Pairs) == 0 && len(d.Fans) == 0 && len(d.Sessions) == 0 && len(d.Routed) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO partition_state (group_id, partition, seq, kind, data) VALUES ($1, $2, $3, 'delta', $4)`,
		c.Group, c.Partition, seq, encodeChunkAs(version, chunkState{pairList: d.Pairs, fans: d.Fans, sessionList: d.Sessions, routed: d.Routed})); err != nil {
		return fmt.Errorf("appending state delta: %w", err)
	}
	return nil
}

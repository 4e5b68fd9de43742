package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/queue"
)

// Errors of joining a sale's queue (F12).
var (
	// ErrNoSale is returned for a show that has no sale.
	ErrNoSale = errors.New("the show has no sale")
	// ErrSaleNotOpen is returned when joining before the sale opens.
	ErrSaleNotOpen = errors.New("the sale is not open yet")
	// ErrSaleClosed is returned when joining once the show has started.
	ErrSaleClosed = errors.New("the show has started")
	// ErrNotInQueue is returned for the status of a fan who has not joined.
	ErrNotInQueue = errors.New("the fan is not in the queue")
)

// Sale is how a show's tickets go on sale: from when fans may join its queue,
// and how its queue is admitted.
type Sale struct {
	ShowID string
	// OpensAt is when fans may join and the first batch is admitted. Zero in
	// PutSale means the show's on-sale start, or now when it has none.
	OpensAt time.Time
	queue.Settings
	// NextBatchAt is when the next batch may be admitted (read only).
	NextBatchAt time.Time
	// LastBatchAt is when the last batch was admitted, nil before the first (read only).
	LastBatchAt *time.Time
	// UpdatedAt is when the sale was last changed (read only).
	UpdatedAt time.Time
}

// SaleQueue counts one queue of a sale.
type SaleQueue struct {
	Queue queue.Queue
	// Section is where the queue's fans are seated under the sale's sections.
	Section  string
	Joined   int64
	Admitted int64
	// Waiting is how many fans of the queue are not admitted yet.
	Waiting int64
}

// SaleStatus is a sale with its queues in admission order.
type SaleStatus struct {
	Sale
	Queues []SaleQueue
}

// PutSale creates or replaces the sale of one of an organization's shows (a
// show of a performer the organization owns; any other is ErrNotFound) and
// reports whether it created it. Invalid settings are an *InvalidError
// listing every problem. Until a first batch is admitted, the first batch is
// due when the sale opens; after that, one batch interval after the last.
func (s *Store) PutSale(ctx context.Context, orgID string, sale Sale) (created bool, err error) {
	sale.Agents = cmp.Or(sale.Agents, queue.AgentsHold)
	if err := invalid(sale.Validate()); err != nil {
		return false, err
	}
	sections, err := json.Marshal(sale.Sections.Strings())
	if err != nil {
		return false, fmt.Errorf("encoding sections: %w", err)
	}
	var opens *time.Time
	if !sale.OpensAt.IsZero() {
		opens = &sale.OpensAt
	}
	// The show's row is read (and locked against a change of performer) in
	// the same statement that writes the sale, so the organization that owns
	// it is the one that asked.
	err = s.pool.QueryRow(ctx, `WITH sh AS (
			SELECT sh.id, COALESCE($3, sh.onsale_start, now()) AS opens_at FROM shows sh
			JOIN performers p ON p.id = sh.performer_id
			WHERE sh.id = $1 AND p.org_id = $2 FOR SHARE OF sh)
		INSERT INTO sales AS sa (show_id, opens_at, batch_size, batch_interval, sections, automated, agents, next_batch_at)
		SELECT sh.id, sh.opens_at, $4, $5::float8 * interval '1 microsecond', $6, $7, $8, sh.opens_at FROM sh
		ON CONFLICT (show_id) DO UPDATE SET opens_at = excluded.opens_at, batch_size = excluded.batch_size,
			batch_interval = excluded.batch_interval, sections = excluded.sections, automated = excluded.automated,
			agents = excluded.agents,
			next_batch_at = CASE WHEN sa.last_batch_at IS NULL THEN excluded.opens_at
				ELSE GREATEST(sa.last_batch_at + excluded.batch_interval, excluded.opens_at) END,
			updated_at = now()
		RETURNING xmax = 0`, sale.ShowID, orgID, opens, sale.BatchSize, sale.BatchInterval.Microseconds(),
		sections, string(sale.Automated), string(sale.Agents)).Scan(&created)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("show %s: %w", sale.ShowID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("saving sale of show %s: %w", sale.ShowID, err)
	}
	return created, nil
}

// OrgSale returns the sale of one of an organization's shows with its
// queues' counts; a show of another organization is ErrNotFound, and one of
// its own without a sale ErrNoSale.
func (s *Store) OrgSale(ctx context.Context, orgID, showID string) (SaleStatus, error) {
	var (
		st       = SaleStatus{Sale: Sale{ShowID: showID}}
		hasSale  bool
		opens    *time.Time
		size     *int
		interval *int64
		sections []byte
		policy   *string
		agents   *string
		next     *time.Time
		updated  *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT sa.show_id IS NOT NULL, sa.opens_at, sa.batch_size,
			(EXTRACT(EPOCH FROM sa.batch_interval) * 1000000)::bigint, sa.sections, sa.automated, sa.agents,
			sa.next_batch_at, sa.last_batch_at, sa.updated_at
		FROM shows sh JOIN performers p ON p.id = sh.performer_id
		LEFT JOIN sales sa ON sa.show_id = sh.id
		WHERE sh.id = $1 AND p.org_id = $2`, showID, orgID).Scan(&hasSale, &opens, &size, &interval, &sections, &policy, &agents,
		&next, &st.LastBatchAt, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return SaleStatus{}, fmt.Errorf("show %s: %w", showID, ErrNotFound)
	}
	if err != nil {
		return SaleStatus{}, fmt.Errorf("reading sale: %w", err)
	}
	if !hasSale {
		return SaleStatus{}, fmt.Errorf("show %s: %w", showID, ErrNoSale)
	}
	st.OpensAt, st.BatchSize, st.BatchInterval = *opens, *size, time.Duration(*interval)*time.Microsecond
	st.Automated, st.Agents, st.NextBatchAt, st.UpdatedAt = queue.Policy(*policy), queue.AgentPolicy(*agents), *next, *updated
	if st.Sections, err = decodeSections(sections); err != nil {
		return SaleStatus{}, err
	}
	rows, err := s.pool.Query(ctx, `SELECT queue, joined, admitted, `+waitingSQL+`
		FROM sale_queues sq WHERE show_id = $1 ORDER BY queue DESC`, showID)
	if err != nil {
		return SaleStatus{}, fmt.Errorf("reading sale queues: %w", err)
	}
	var q SaleQueue
	if _, err := pgx.ForEachRow(rows, []any{&q.Queue, &q.Joined, &q.Admitted, &q.Waiting}, func() error {
		q.Section = st.Sections.For(q.Queue)
		st.Queues = append(st.Queues, q)
		return nil
	}); err != nil {
		return SaleStatus{}, fmt.Errorf("reading sale queues: %w", err)
	}
	return st, nil
}

// waitingSQL is how many fans of the sale_queues row sq wait: those after
// the last admitted sequence number, less the ones erased since they joined.
const waitingSQL = `sq.joined - sq.admitted_through - (SELECT count(*) FROM queue_gaps g
	WHERE g.show_id = sq.show_id AND g.queue = sq.queue AND g.seq > sq.admitted_through)`

func decodeSections(b []byte) (queue.Sections, error) {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding sections: %w", err)
	}
	sections, err := queue.ParseSections(m)
	if err != nil {
		return nil, fmt.Errorf("decoding sections: %w", err)
	}
	return sections, nil
}

// SetFanClassification records what bot detection concluded about a fan
// (F14), with its reasons. Queues read it when the fan joins.
func (s *Store) SetFanClassification(ctx context.Context, fan uuid.UUID, class queue.Class, reason string) error {
	if !class.Valid() {
		return invalid(fmt.Errorf("class: must be %q, %q or %q; got %q", queue.Human, queue.Automated, queue.Unknown, class))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO fan_classifications (fan_id, class, reason) VALUES ($1, $2, $3)
		ON CONFLICT (fan_id) DO UPDATE SET class = excluded.class, reason = excluded.reason, updated_at = now()`,
		fan, string(class), reason)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("fan %s: %w", fan, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("saving fan classification: %w", err)
	}
	return nil
}

// QueueEntry is a fan's place in a sale's queue.
type QueueEntry struct {
	ShowID string
	FanID  uuid.UUID
	Queue  queue.Queue
	// Tier is the priority tier the fan's offers earned when they joined; an
	// automated account's does not count.
	Tier int
	// Seq is the fan's number in their queue: 1 for its first joiner.
	Seq   int64
	Class queue.Class
	// Position is the fan's 1-based place among everyone waiting in the sale,
	// across queues; 0 once admitted.
	Position int64
	// Section is where the fan is seated: the one they were admitted to, or
	// while they wait the one their queue maps to now.
	Section    string
	JoinedAt   time.Time
	AdmittedAt *time.Time
}

// Admitted reports whether the fan has been admitted to buy.
func (e QueueEntry) Admitted() bool { return e.AdmittedAt != nil }

// JoinQueue puts a fan in the queue of a show's sale at now and reports
// whether it did; a fan already in it gets their entry, as it stands now. The
// fan's queue is their priority tier for the show (the highest tier of their
// offers for it that are live or redeemed) or the general queue, unless they
// are classified as automated: then they are relegated behind the general
// queue or, when the sale bars them, refused with queue.ErrBarred. Joining
// is ErrNoSale without a sale, ErrSaleNotOpen before it opens and
// ErrSaleClosed once the show has started.
//
// The database hands out sequence numbers: the joining transaction takes the
// next one from its queue's counter row and holds that row until it commits,
// so numbers are gap-free and match the order in which joins commit.
func (s *Store) JoinQueue(ctx context.Context, showID string, fan uuid.UUID, now time.Time) (QueueEntry, bool, error) {
	var (
		opens, starts time.Time
		policy, class string
		tier          int
		joined        bool
	)
	err := s.pool.QueryRow(ctx, `SELECT sa.opens_at, sh.starts_at, sa.automated,
			EXISTS (SELECT 1 FROM queue_entries e WHERE e.show_id = sa.show_id AND e.fan_id = $2),
			COALESCE((SELECT max(o.tier) FROM offers o WHERE o.fan_id = $2 AND o.show_id = sa.show_id
				AND (o.status = 'redeemed' OR (o.status IN ('issued', 'delivered') AND o.expires_at > $3))), 0),
			COALESCE((SELECT c.class FROM fan_classifications c WHERE c.fan_id = $2), 'unknown')
		FROM sales sa JOIN shows sh ON sh.id = sa.show_id WHERE sa.show_id = $1`, showID, fan, now).Scan(
		&opens, &starts, &policy, &joined, &tier, &class)
	if errors.Is(err, pgx.ErrNoRows) {
		return QueueEntry{}, false, fmt.Errorf("show %s: %w", showID, ErrNoSale)
	}
	if err != nil {
		return QueueEntry{}, false, fmt.Errorf("reading sale for joining: %w", err)
	}
	if joined {
		e, err := s.QueueStatus(ctx, showID, fan)
		return e, false, err
	}
	switch {
	case now.Before(opens):
		return QueueEntry{}, false, fmt.Errorf("show %s opens at %s: %w", showID, opens.UTC().Format(time.RFC3339), ErrSaleNotOpen)
	case !now.Before(starts):
		return QueueEntry{}, false, fmt.Errorf("show %s: %w", showID, ErrSaleClosed)
	}
	q, err := queue.Assign(tier, queue.Class(class), queue.Policy(policy))
	if err != nil {
		return QueueEntry{}, false, fmt.Errorf("joining show %s: %w", showID, err)
	}
	inserted := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var seq int64
		err := tx.QueryRow(ctx, `WITH c AS (
				INSERT INTO sale_queues (show_id, queue, joined) VALUES ($1, $3, 1)
				ON CONFLICT (show_id, queue) DO UPDATE SET joined = sale_queues.joined + 1
				RETURNING joined)
			INSERT INTO queue_entries (show_id, fan_id, queue, tier, seq, classification, joined_at)
			SELECT $1, $2, $3, $4, c.joined, $5, $6 FROM c
			ON CONFLICT (show_id, fan_id) DO NOTHING
			RETURNING seq`, showID, fan, int(q), tier, class, now).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			// The same fan joined at the same moment and won: returning an
			// error rolls the counter back, so the number is not lost.
			return errAlreadyJoined
		}
		if err != nil {
			return err
		}
		inserted = true
		return nil
	})
	switch {
	case errors.Is(err, errAlreadyJoined):
	case isForeignKeyViolation(err):
		return QueueEntry{}, false, fmt.Errorf("joining show %s: fan %s: %w", showID, fan, ErrNotFound)
	case err != nil:
		return QueueEntry{}, false, fmt.Errorf("joining show %s: %w", showID, err)
	}
	e, err := s.QueueStatus(ctx, showID, fan)
	return e, inserted, err
}

var errAlreadyJoined = errors.New("already joined")

// QueueStatus returns a fan's entry in a show's queue with their position
// now. It is ErrNotInQueue for a fan who has not joined, ErrNoSale for a
// show without a sale.
func (s *Store) QueueStatus(ctx context.Context, showID string, fan uuid.UUID) (QueueEntry, error) {
	e := QueueEntry{ShowID: showID, FanID: fan}
	var (
		class        string
		section      *string
		queues       []int
		waiting      []int64
		aheadInQueue int64
		sections     []byte
	)
	// One statement, so the entry and the counters are of one snapshot.
	err := s.pool.QueryRow(ctx, `WITH q AS (
			SELECT sq.queue, sq.admitted_through, `+waitingSQL+` AS waiting
			FROM sale_queues sq WHERE sq.show_id = $1)
		SELECT e.queue, e.tier, e.seq, e.classification, e.joined_at, e.admitted_at, e.section,
			(SELECT array_agg(queue) FROM q), (SELECT array_agg(waiting) FROM q),
			e.seq - 1 - own.admitted_through - (SELECT count(*) FROM queue_gaps g WHERE g.show_id = e.show_id
				AND g.queue = e.queue AND g.seq > own.admitted_through AND g.seq < e.seq),
			sa.sections
		FROM queue_entries e JOIN q own ON own.queue = e.queue JOIN sales sa ON sa.show_id = e.show_id
		WHERE e.show_id = $1 AND e.fan_id = $2`, showID, fan).Scan(&e.Queue, &e.Tier, &e.Seq, &class, &e.JoinedAt,
		&e.AdmittedAt, &section, &queues, &waiting, &aheadInQueue, &sections)
	if errors.Is(err, pgx.ErrNoRows) {
		var hasSale bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sales WHERE show_id = $1)`, showID).Scan(&hasSale); err != nil {
			return QueueEntry{}, fmt.Errorf("reading sale: %w", err)
		}
		if !hasSale {
			return QueueEntry{}, fmt.Errorf("show %s: %w", showID, ErrNoSale)
		}
		return QueueEntry{}, fmt.Errorf("show %s, fan %s: %w", showID, fan, ErrNotInQueue)
	}
	if err != nil {
		return QueueEntry{}, fmt.Errorf("reading queue entry: %w", err)
	}
	e.Class = queue.Class(class)
	if e.Admitted() {
		if section != nil {
			e.Section = *section
		}
		return e, nil
	}
	w := make([]queue.Waiting, len(queues))
	for i := range queues {
		w[i] = queue.Waiting{Queue: queue.Queue(queues[i]), Count: waiting[i]}
	}
	e.Position = queue.Position(e.Queue, aheadInQueue, w)
	sec, err := decodeSections(sections)
	if err != nil {
		return QueueEntry{}, err
	}
	e.Section = sec.For(e.Queue)
	return e, nil
}

// AdmitNextBatch admits the next batch of a show's queue when it is due at
// now: up to the sale's batch size, in priority order (tiers high to low,
// general, relegated; first come, first served within each), each fan with
// the section their queue maps to. It returns how many it admitted: 0 when
// the batch is not due, nobody waits, there is no sale, or another process
// is admitting this sale's batch at the same moment (its row is locked; this
// call skips it rather than wait and admit a second batch). A batch that
// admits nobody does not count: the next joiner is admitted at once.
func (s *Store) AdmitNextBatch(ctx context.Context, showID string, now time.Time) (int64, error) {
	var total int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			size     int64
			due      time.Time
			interval int64
			raw      []byte
		)
		// NO KEY UPDATE, not UPDATE: joins insert rows that reference the sale
		// and take KEY SHARE on it, which must not wait for a batch.
		err := tx.QueryRow(ctx, `SELECT batch_size, next_batch_at,
				(EXTRACT(EPOCH FROM batch_interval) * 1000000)::bigint, sections
			FROM sales WHERE show_id = $1 AND next_batch_at <= $2
			FOR NO KEY UPDATE SKIP LOCKED`, showID, now).Scan(&size, &due, &interval, &raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("locking sale: %w", err)
		}
		sections, err := decodeSections(raw)
		if err != nil {
			return err
		}
		// Locking the counters waits for joins in flight, so every number
		// handed out so far is visible below: a batch admits a prefix of
		// each queue, and admitted_through stays exact.
		rows, err := tx.Query(ctx, `SELECT queue FROM sale_queues WHERE show_id = $1
			ORDER BY queue DESC FOR NO KEY UPDATE`, showID)
		if err != nil {
			return fmt.Errorf("locking sale queues: %w", err)
		}
		queues, err := pgx.CollectRows(rows, pgx.RowTo[queue.Queue])
		if err != nil {
			return fmt.Errorf("locking sale queues: %w", err)
		}
		queue.Sort(queues)
		for _, q := range queues {
			if total >= size {
				break
			}
			var n int64
			err := tx.QueryRow(ctx, `WITH picked AS (
					SELECT fan_id FROM queue_entries
					WHERE show_id = $1 AND queue = $2 AND admitted_at IS NULL ORDER BY seq LIMIT $3),
				upd AS (
					UPDATE queue_entries e SET admitted_at = $4, section = NULLIF($5, '')
					FROM picked p WHERE e.show_id = $1 AND e.fan_id = p.fan_id AND e.admitted_at IS NULL
					RETURNING e.seq),
				agg AS (SELECT count(*) AS n, COALESCE(max(seq), 0) AS through FROM upd),
				counted AS (
					UPDATE sale_queues sq SET admitted = sq.admitted + agg.n,
						admitted_through = GREATEST(sq.admitted_through, agg.through)
					FROM agg WHERE sq.show_id = $1 AND sq.queue = $2 AND agg.n > 0),
				passed AS (
					DELETE FROM queue_gaps g USING agg WHERE g.show_id = $1 AND g.queue = $2 AND g.seq <= agg.through)
				SELECT n FROM agg`, showID, int(q), size-total, now, sections.For(q)).Scan(&n)
			if err != nil {
				return fmt.Errorf("admitting %s: %w", q, err)
			}
			total += n
		}
		if total == 0 {
			return nil
		}
		next := queue.NextBatchAt(due, now, time.Duration(interval)*time.Microsecond)
		if _, err := tx.Exec(ctx, `UPDATE sales SET next_batch_at = $2, last_batch_at = $3 WHERE show_id = $1`,
			showID, next, now); err != nil {
			return fmt.Errorf("scheduling next batch: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("admitting batch of show %s: %w", showID, err)
	}
	return total, nil
}

// AdmitDue admits the next batch of every sale whose batch is due at now and
// that has fans waiting, and returns how many fans it admitted. A sale that
// fails does not stop the others; the errors are returned together. It is
// the body of the queue admission job, which runs it every second.
func (s *Store) AdmitDue(ctx context.Context, now time.Time) (int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT sa.show_id FROM sales sa WHERE sa.next_batch_at <= $1
		AND EXISTS (SELECT 1 FROM queue_entries e WHERE e.show_id = sa.show_id AND e.admitted_at IS NULL)
		ORDER BY sa.next_batch_at, sa.show_id`, now)
	if err != nil {
		return 0, fmt.Errorf("reading due sales: %w", err)
	}
	shows, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("reading due sales: %w", err)
	}
	var (
		total int64
		errs  []error
	)
	for _, show := range shows {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		n, err := s.AdmitNextBatch(ctx, show, now)
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

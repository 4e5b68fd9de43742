package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OfferRedeemed is the state of an offer its fan has redeemed (F11).
const OfferRedeemed = "redeemed"

// Redemption errors; each is distinct so the API can answer precisely. An
// offer that does not exist (never issued, or erased) is ErrNotFound.
var (
	// ErrNotYourOffer is an offer redeemed for a fan it was not issued to.
	ErrNotYourOffer = errors.New("offer belongs to another fan")
	// ErrAlreadyRedeemed is an offer redeemed before: tokens are single-use.
	ErrAlreadyRedeemed = errors.New("offer already redeemed")
	// ErrOfferExpired is an offer past its termination time.
	ErrOfferExpired = errors.New("offer expired")
	// ErrOfferVoid is an offer whose delivery failed for good: it was never
	// sent, so it cannot be redeemed.
	ErrOfferVoid = errors.New("offer void: its delivery failed")
	// ErrSoldOut is an offer whose tier has no units left.
	ErrSoldOut = errors.New("offer tier sold out")
)

// RedeemRequest asks to redeem one offer for one fan through one partner.
type RedeemRequest struct {
	OfferID uuid.UUID
	// Expires is the expiry the offer's token carries; the offer expires at the
	// earlier of it and its own termination time. Zero: the offer's alone.
	Expires   time.Time
	FanID     uuid.UUID
	PartnerID string
	// At is when the fan redeems; zero: now.
	At time.Time
	// Agent, when set, is the declared agent redeeming for the fan (F15):
	// the redemption and an agent action are attributed to it, and its
	// reaction time is never evidence against the fan.
	Agent *uuid.UUID
}

// Redemption is a redeemed offer, with the fan's reaction times.
type Redemption struct {
	OfferID     uuid.UUID
	FanID       uuid.UUID
	PartnerID   string
	RuleID      string
	Tier        int
	PerformerID string
	ShowID      string
	Perks       []string
	// SentAt is when the offer was delivered, or issued when the redemption
	// came before its delivery was recorded.
	SentAt time.Time
	// OpenedAt is the first open of the offer's link, nil when the fan
	// redeemed without opening it (in an app, say).
	OpenedAt   *time.Time
	RedeemedAt time.Time
	// SentToOpened is nil when OpenedAt is.
	SentToOpened   *time.Duration
	SentToRedeemed time.Duration
}

// Redeem redeems an offer in one transaction: the offer's row is locked, it
// must be the fan's, neither redeemed, expired nor void, and its tier must
// have a unit left, which is taken with a conditional update. Concurrent
// redemptions are refereed by those row locks: of N redeeming one offer one
// wins and the rest get ErrAlreadyRedeemed; a tier with U units left admits
// exactly U more, and the rest get ErrSoldOut.
func (s *Store) Redeem(ctx context.Context, r RedeemRequest) (Redemption, error) {
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	var red Redemption
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		var expires time.Time
		err := tx.QueryRow(ctx, `SELECT fan_id, status, expires_at, rule_id, tier, performer_id, show_id, perks
			FROM offers WHERE id = $1 FOR NO KEY UPDATE`, r.OfferID).Scan(
			&red.FanID, &status, &expires, &red.RuleID, &red.Tier, &red.PerformerID, &red.ShowID, &red.Perks)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("offer %s: %w", r.OfferID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("locking offer: %w", err)
		}
		// Ownership first: another fan learns nothing of the offer's state.
		if red.FanID != r.FanID {
			return ErrNotYourOffer
		}
		switch status {
		case OfferRedeemed:
			return ErrAlreadyRedeemed
		case OfferExpired:
			return ErrOfferExpired
		case OfferFailed:
			return ErrOfferVoid
		}
		if !at.Before(expires) || (!r.Expires.IsZero() && !at.Before(r.Expires)) {
			return ErrOfferExpired
		}
		var openMS *int64
		var redeemMS int64
		err = tx.QueryRow(ctx, `WITH o AS (
				UPDATE offers SET status = 'redeemed', redeemed_at = $2 WHERE id = $1
				RETURNING id, fan_id, rule_id, tier, COALESCE(delivered_at, issued_at) AS sent_at, opened_at, redeemed_at)
			INSERT INTO redemptions (offer_id, fan_id, partner_id, rule_id, tier, sent_at, opened_at, redeemed_at, agent_id, by_agent)
			SELECT id, fan_id, $3, rule_id, tier, sent_at, opened_at, redeemed_at, $4, $4::uuid IS NOT NULL FROM o
			RETURNING sent_at, opened_at, redeemed_at, sent_to_opened_ms, sent_to_redeemed_ms`,
			r.OfferID, at, r.PartnerID, r.Agent).Scan(&red.SentAt, &red.OpenedAt, &red.RedeemedAt, &openMS, &redeemMS)
		if err != nil {
			return fmt.Errorf("recording redemption: %w", err)
		}
		red.OfferID, red.PartnerID = r.OfferID, r.PartnerID
		red.SentToOpened = msDuration(openMS)
		red.SentToRedeemed = time.Duration(redeemMS) * time.Millisecond
		// The unit last, so the tier's row, which every redemption of the tier
		// waits for, is held for the shortest time. Both parts read one
		// snapshot: a tier limited when the statement starts is sold out when
		// no unit could be taken; a tier without a row has no limit.
		var limited, took bool
		err = tx.QueryRow(ctx, `WITH lim AS (SELECT 1 FROM tier_inventory WHERE rule_id = $1 AND tier = $2),
				took AS (UPDATE tier_inventory SET redeemed = redeemed + 1, updated_at = now()
					WHERE rule_id = $1 AND tier = $2 AND redeemed < units RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM lim), EXISTS (SELECT 1 FROM took)`, red.RuleID, red.Tier).Scan(&limited, &took)
		if err != nil {
			return fmt.Errorf("taking a unit of inventory: %w", err)
		}
		if limited && !took {
			return ErrSoldOut
		}
		if r.Agent != nil {
			return recordAgentAction(ctx, tx, *r.Agent, r.FanID, "redeem", r.OfferID.String())
		}
		return nil
	})
	if err != nil {
		return Redemption{}, fmt.Errorf("redeeming offer: %w", err)
	}
	return red, nil
}

func msDuration(ms *int64) *time.Duration {
	if ms == nil {
		return nil
	}
	d := time.Duration(*ms) * time.Millisecond
	return &d
}

// Redemptions returns a fan's redemptions, oldest first, with their reaction
// times (what bot detection, F13, reads).
func (s *Store) Redemptions(ctx context.Context, fan uuid.UUID) ([]Redemption, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.offer_id, r.fan_id, r.partner_id, r.rule_id, r.tier, o.performer_id, o.show_id,
			o.perks, r.sent_at, r.opened_at, r.redeemed_at, r.sent_to_opened_ms, r.sent_to_redeemed_ms
		FROM redemptions r JOIN offers o ON o.id = r.offer_id
		WHERE r.fan_id = $1 ORDER BY r.redeemed_at, r.offer_id`, fan)
	if err != nil {
		return nil, fmt.Errorf("reading redemptions: %w", err)
	}
	var out []Redemption
	var red Redemption
	var openMS *int64
	var redeemMS int64
	_, err = pgx.ForEachRow(rows, []any{&red.OfferID, &red.FanID, &red.PartnerID, &red.RuleID, &red.Tier, &red.PerformerID,
		&red.ShowID, &red.Perks, &red.SentAt, &red.OpenedAt, &red.RedeemedAt, &openMS, &redeemMS}, func() error {
		red.SentToOpened = msDuration(openMS)
		red.SentToRedeemed = time.Duration(redeemMS) * time.Millisecond
		out = append(out, red)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading redemptions: %w", err)
	}
	return out, nil
}

// OfferLink is what an offer's link shows whoever holds it: no fan data.
type OfferLink struct {
	OfferID       uuid.UUID
	Status        string
	Tier          int
	Perks         []string
	PerformerName string
	ShowName      string
	ShowStartsAt  time.Time
	ExpiresAt     time.Time
	OpenedAt      *time.Time
	RedeemedAt    *time.Time
}

// MarkOpened records the first open of an offer's link, at, while the offer
// can still be redeemed (later opens, and opens of a redeemed, void or expired
// offer, change nothing), and returns what the link shows. An offer that does
// not exist is ErrNotFound.
func (s *Store) MarkOpened(ctx context.Context, offerID uuid.UUID, at time.Time) (OfferLink, error) {
	_, err := s.pool.Exec(ctx, `UPDATE offers SET opened_at = $2
		WHERE id = $1 AND opened_at IS NULL AND status IN ('issued', 'delivered') AND expires_at > $2`, offerID, at)
	if err != nil {
		return OfferLink{}, fmt.Errorf("recording offer opened: %w", err)
	}
	// A second statement sees a concurrent first open that this one lost to.
	var l OfferLink
	err = s.pool.QueryRow(ctx, `SELECT o.id, o.status, o.tier, o.perks, p.name, sh.name, sh.starts_at,
			o.expires_at, o.opened_at, o.redeemed_at
		FROM offers o JOIN shows sh ON sh.id = o.show_id JOIN performers p ON p.id = o.performer_id
		WHERE o.id = $1`, offerID).Scan(&l.OfferID, &l.Status, &l.Tier, &l.Perks, &l.PerformerName, &l.ShowName,
		&l.ShowStartsAt, &l.ExpiresAt, &l.OpenedAt, &l.RedeemedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return OfferLink{}, fmt.Errorf("offer %s: %w", offerID, ErrNotFound)
	}
	if err != nil {
		return OfferLink{}, fmt.Errorf("reading opened offer: %w", err)
	}
	return l, nil
}

// TierInventory is how many units a rule's tier may hand out and how many
// are redeemed.
type TierInventory struct {
	RuleID   string
	Tier     int
	Units    int
	Redeemed int
}

// SetTierInventory limits a rule's tier (1-based) to units redemptions in
// all. A tier limited for the first time counts the redemptions it already
// had. Units below what is redeemed, or a negative count, is an *InvalidError;
// an unknown rule is ErrNotFound.
func (s *Store) SetTierInventory(ctx context.Context, ruleID string, tier, units int) error {
	if err := invalid(checkInventory(tier, units)...); err != nil {
		return err
	}
	err := upsertTierInventory(ctx, s.pool, ruleID, tier, units)
	switch {
	case isForeignKeyViolation(err):
		return fmt.Errorf("rule %s: %w", ruleID, ErrNotFound)
	case isCheckViolation(err): // redeemed <= units
		return invalid(fmt.Errorf("units: %d is fewer than the units already redeemed", units))
	case err != nil:
		return fmt.Errorf("setting inventory of rule %s tier %d: %w", ruleID, tier, err)
	}
	return nil
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// upsertTierInventory sets a tier's units, counting the redemptions it
// already had when it is limited for the first time. A limit below them
// fails the table's check (isCheckViolation).
func upsertTierInventory(ctx context.Context, q execer, ruleID string, tier, units int) error {
	_, err := q.Exec(ctx, `INSERT INTO tier_inventory (rule_id, tier, units, redeemed)
		VALUES ($1, $2, $3, (SELECT count(*) FROM redemptions WHERE rule_id = $1 AND tier = $2))
		ON CONFLICT (rule_id, tier) DO UPDATE SET units = excluded.units, updated_at = now()`, ruleID, tier, units)
	return err
}

func checkInventory(tier, units int) []error {
	var problems []error
	if tier < 1 {
		problems = append(problems, errors.New("tier: must be 1 or more"))
	}
	if units < 0 {
		problems = append(problems, errors.New("units: must not be negative"))
	}
	return problems
}

// TierInventories returns the inventory of every limited tier of a rule, by tier.
func (s *Store) TierInventories(ctx context.Context, ruleID string) ([]TierInventory, error) {
	rows, err := s.pool.Query(ctx, `SELECT rule_id, tier, units, redeemed FROM tier_inventory
		WHERE rule_id = $1 ORDER BY tier`, ruleID)
	if err != nil {
		return nil, fmt.Errorf("reading tier inventory: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TierInventory])
	if err != nil {
		return nil, fmt.Errorf("reading tier inventory: %w", err)
	}
	return out, nil
}

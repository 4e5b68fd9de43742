package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/scoring"
)

// offersChannel is the NOTIFY channel of migration 00033: "<offer id> <status>"
// for every new offer and every change of an offer's status or delivery.
const offersChannel = "crescendo_offers"

// LiveOffer is an offer as the marketer console's live view shows it: no
// contact details, only the fan's pseudonymous id.
type LiveOffer struct {
	ID           uuid.UUID  `json:"offer_id"`
	FanID        uuid.UUID  `json:"fan_id"`
	RuleID       string     `json:"rule_id"`
	RuleVersion  int        `json:"rule_version"`
	Tier         int        `json:"tier"`
	PerformerID  string     `json:"performer_id"`
	ShowID       string     `json:"show_id"`
	IndexValue   float64    `json:"index"`
	Status       string     `json:"status"`
	Channel      string     `json:"channel,omitempty"`
	StatusReason string     `json:"status_reason,omitempty"`
	IssuedAt     time.Time  `json:"issued_at"`
	DeliveredAt  *time.Time `json:"delivered_at,omitempty"`
}

// liveOfferColumns are what scanLiveOffers reads, from offers o joined to
// performers p (which carries the organization).
const liveOfferColumns = `o.id, o.fan_id, o.rule_id, o.rule_version, o.tier, o.performer_id, o.show_id, o.index_value,
	o.status, COALESCE(o.channel, ''), COALESCE(o.status_reason, ''), o.issued_at, o.delivered_at`

func scanLiveOffers(rows pgx.Rows) ([]LiveOffer, error) {
	var out []LiveOffer
	var o LiveOffer
	_, err := pgx.ForEachRow(rows, []any{&o.ID, &o.FanID, &o.RuleID, &o.RuleVersion, &o.Tier, &o.PerformerID, &o.ShowID,
		&o.IndexValue, &o.Status, &o.Channel, &o.StatusReason, &o.IssuedAt, &o.DeliveredAt}, func() error {
		out = append(out, o)
		o.DeliveredAt = nil // a fresh pointer for the next row
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading offers: %w", err)
	}
	return out, nil
}

// RecentOffers returns an organization's latest offers, the most recently
// issued or delivered first.
func (s *Store) RecentOffers(ctx context.Context, orgID string, limit int) ([]LiveOffer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+liveOfferColumns+` FROM offers o JOIN performers p ON p.id = o.performer_id
		WHERE p.org_id = $1 ORDER BY GREATEST(o.issued_at, o.delivered_at) DESC, o.id LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, fmt.Errorf("reading offers: %w", err)
	}
	return scanLiveOffers(rows)
}

// LiveOffersByID returns those of the offers that belong to the
// organization's performers, in no particular order.
func (s *Store) LiveOffersByID(ctx context.Context, orgID string, ids []uuid.UUID) ([]LiveOffer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+liveOfferColumns+` FROM offers o JOIN performers p ON p.id = o.performer_id
		WHERE p.org_id = $1 AND o.id = ANY($2)`, orgID, ids)
	if err != nil {
		return nil, fmt.Errorf("reading offers: %w", err)
	}
	return scanLiveOffers(rows)
}

// ListenOffers announces the id of every offer issued or changed from now on
// to onNotice, on a connection of its own. It calls onListen once it listens,
// so the caller can catch up on what it missed before; it returns only with an
// error (or when ctx ends): the caller reconnects.
func (s *Store) ListenOffers(ctx context.Context, onListen func(), onNotice func(uuid.UUID)) error {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	// The connection carries a LISTEN: it must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+offersChannel); err != nil {
		return fmt.Errorf("listening for offers: %w", err)
	}
	onListen()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("waiting for offers: %w", err)
		}
		idText, _, _ := strings.Cut(n.Payload, " ")
		id, err := uuid.Parse(idText)
		if err != nil {
			s.logger.WarnContext(ctx, "ignoring a malformed offer notice")
			continue
		}
		onNotice(id)
	}
}

// TimelineBucket counts what happened to an organization's offers in one
// interval: offers issued in it, and offers delivered in it.
type TimelineBucket struct {
	Start     time.Time `json:"start"`
	Issued    int       `json:"issued"`
	Delivered int       `json:"delivered"`
}

// OfferTimeline counts an organization's offers issued and delivered in each
// bucket-long interval from from to until (every interval, empty ones too);
// ruleID, when not empty, narrows it to one rule.
func (s *Store) OfferTimeline(ctx context.Context, orgID, ruleID string, from, until time.Time, bucket time.Duration) ([]TimelineBucket, error) {
	if bucket <= 0 || !until.After(from) {
		return nil, errors.New("offer timeline: want a positive bucket and until after from")
	}
	rows, err := s.pool.Query(ctx, `
		WITH b AS (
			SELECT generate_series(date_bin($4, $2::timestamptz, $2::timestamptz), $3::timestamptz, $4) AS start
		), o AS (
			SELECT o.issued_at, o.delivered_at FROM offers o JOIN performers p ON p.id = o.performer_id
			WHERE p.org_id = $1 AND ($5 = '' OR o.rule_id = $5)
				AND (o.issued_at >= $2 OR o.delivered_at >= $2)
		)
		SELECT b.start,
			(SELECT count(*) FROM o WHERE o.issued_at >= b.start AND o.issued_at < b.start + $4),
			(SELECT count(*) FROM o WHERE o.delivered_at >= b.start AND o.delivered_at < b.start + $4)
		FROM b WHERE b.start < $3 ORDER BY b.start`, orgID, from, until, bucket, ruleID)
	if err != nil {
		return nil, fmt.Errorf("reading offer timeline: %w", err)
	}
	var out []TimelineBucket
	var tb TimelineBucket
	if _, err := pgx.ForEachRow(rows, []any{&tb.Start, &tb.Issued, &tb.Delivered}, func() error {
		out = append(out, tb)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading offer timeline: %w", err)
	}
	return out, nil
}

// FanContributions are one fan's contributions to a performer's index, with
// the friend count behind the human point: what scoring.Explain takes.
type FanContributions struct {
	FanID         uuid.UUID
	Contributions []scoring.Contribution
	Fact          *scoring.FanFact
}

// PerformerContributions returns the contributions of up to maxFans fans to
// one of an organization's performers (another organization's performer is
// ErrNotFound), and whether there were more fans than that. It reads every
// contribution of the fans it takes, so maxFans bounds the work.
func (s *Store) PerformerContributions(ctx context.Context, orgID, performerID string, maxFans int) ([]FanContributions, bool, error) {
	var owned bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM performers WHERE id = $1 AND org_id = $2)`,
		performerID, orgID).Scan(&owned); err != nil {
		return nil, false, fmt.Errorf("reading performer: %w", err)
	}
	if !owned {
		return nil, false, fmt.Errorf("performer %s: %w", performerID, ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `
		WITH f AS (SELECT DISTINCT fan_id FROM contributions WHERE performer_id = $1 ORDER BY fan_id LIMIT $2)
		SELECT c.fan_id, c.signal, c.points, c.event_id, c.at, c.detail, ff.friend_count, ff.event_id, ff.at
		FROM f JOIN contributions c ON c.fan_id = f.fan_id AND c.performer_id = $1
		LEFT JOIN fan_facts ff ON ff.fan_id = f.fan_id
		ORDER BY c.fan_id, c.at`, performerID, maxFans+1)
	if err != nil {
		return nil, false, fmt.Errorf("reading contributions: %w", err)
	}
	var out []FanContributions
	var (
		fan        uuid.UUID
		c          scoring.Contribution
		signal     string
		friends    *int64
		factEvent  *string
		factAt     *time.Time
		contribCol = []any{&fan, &signal, &c.Points, &c.EventID, &c.At, &c.Detail, &friends, &factEvent, &factAt}
	)
	if _, err := pgx.ForEachRow(rows, contribCol, func() error {
		if len(out) == 0 || out[len(out)-1].FanID != fan {
			fc := FanContributions{FanID: fan}
			if friends != nil {
				fc.Fact = &scoring.FanFact{FriendCount: *friends, EventID: *factEvent, At: *factAt}
			}
			out = append(out, fc)
		}
		c.Signal = scoring.Signal(signal)
		last := &out[len(out)-1]
		last.Contributions = append(last.Contributions, c)
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("reading contributions: %w", err)
	}
	capped := len(out) > maxFans
	if capped {
		out = out[:maxFans]
	}
	return out, capped, nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
)

// FunnelTier is one tier of a rule from crossing to redemption (F10, F11).
type FunnelTier struct {
	Tier int `json:"tier"`
	// Crossed: fans whose index reached the tier while the rule was active.
	Crossed int `json:"crossed"`
	// Eligible: of those, fans who passed every gate of the rule (some then
	// held out, or refused by the budget or an empty code pool).
	Eligible  int `json:"eligible"`
	Offered   int `json:"offered"`
	Delivered int `json:"delivered"`
	Opened    int `json:"opened"`
	Redeemed  int `json:"redeemed"`
	// DroppedOut counts fans who crossed without an offer, by the last reason recorded.
	DroppedOut map[string]int `json:"dropped_out"`
	// Holdout compares offered fans with the held-out ones: the share of each
	// who bought tickets for the show afterwards (redeeming or a
	// ticket_purchase event); Uplift is the difference the offers made.
	Holdout          int     `json:"holdout"`
	OfferedConverted int     `json:"offered_converted"`
	HoldoutConverted int     `json:"holdout_converted"`
	Uplift           float64 `json:"uplift"`
}

// Funnel is a rule's funnel, tier by tier.
type Funnel struct {
	RuleID  string       `json:"rule_id"`
	Version int          `json:"version"`
	Tiers   []FunnelTier `json:"tiers"`
}

// eligibleReasons are the refusals that come after every gate passed.
var eligibleReasons = []string{string(offers.ReasonHoldout), string(offers.ReasonBudget), string(offers.ReasonCodesExhausted)}

// RuleFunnel returns the funnel of one of an organization's rules; another
// organization's rule is ErrNotFound.
func (s *Store) RuleFunnel(ctx context.Context, orgID, ruleID string) (Funnel, error) {
	f := Funnel{RuleID: ruleID}
	var showID string
	var tiers int
	err := s.pool.QueryRow(ctx, `SELECT r.version, r.show_id, jsonb_array_length(r.tiers) FROM rules r
		JOIN performers p ON p.id = r.performer_id WHERE r.id = $1 AND p.org_id = $2`, ruleID, orgID).Scan(&f.Version, &showID, &tiers)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, fmt.Errorf("rule %s: %w", ruleID, ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("reading rule: %w", err)
	}
	byTier := make([]FunnelTier, tiers)
	for i := range byTier {
		byTier[i] = FunnelTier{Tier: i + 1, DroppedOut: map[string]int{}}
	}
	at := func(tier int) *FunnelTier {
		if tier < 1 || tier > len(byTier) {
			return nil // a tier the rule had in an older version
		}
		return &byTier[tier-1]
	}
	rows, err := s.pool.Query(ctx, `SELECT tier, count(*), count(delivered_at) + count(*) FILTER (WHERE delivered_at IS NULL AND redeemed_at IS NOT NULL),
			count(opened_at), count(redeemed_at),
			count(*) FILTER (WHERE redeemed_at IS NOT NULL OR EXISTS (SELECT 1 FROM conversions c
				WHERE c.fan_id = o.fan_id AND c.show_id = $2 AND c.at >= o.issued_at))
		FROM offers o WHERE rule_id = $1 GROUP BY tier`, ruleID, showID)
	if err != nil {
		return f, fmt.Errorf("counting offers: %w", err)
	}
	var tier, offered, delivered, opened, redeemed, converted int
	if _, err := pgx.ForEachRow(rows, []any{&tier, &offered, &delivered, &opened, &redeemed, &converted}, func() error {
		if t := at(tier); t != nil {
			t.Offered, t.Delivered, t.Opened, t.Redeemed, t.OfferedConverted = offered, delivered, opened, redeemed, converted
		}
		return nil
	}); err != nil {
		return f, fmt.Errorf("counting offers: %w", err)
	}
	// The last reason per fan and tier, for fans the tier issued nothing to.
	rows, err = s.pool.Query(ctx, `SELECT tier, reason, count(*), count(*) FILTER (WHERE converted) FROM (
			SELECT DISTINCT ON (d.fan_id, d.tier) d.tier, d.reason,
				EXISTS (SELECT 1 FROM conversions c WHERE c.fan_id = d.fan_id AND c.show_id = $2 AND c.at >= d.at) AS converted
			FROM offer_decisions d
			WHERE d.rule_id = $1 AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.fan_id = d.fan_id AND o.rule_id = d.rule_id AND o.tier = d.tier)
			ORDER BY d.fan_id, d.tier, d.at DESC) last
		GROUP BY tier, reason`, ruleID, showID)
	if err != nil {
		return f, fmt.Errorf("counting decisions: %w", err)
	}
	var reason string
	var fans, conv int
	if _, err := pgx.ForEachRow(rows, []any{&tier, &reason, &fans, &conv}, func() error {
		t := at(tier)
		if t == nil {
			return nil
		}
		t.DroppedOut[reason] = fans
		if slices.Contains(eligibleReasons, reason) {
			t.Eligible += fans
		}
		if reason == string(offers.ReasonHoldout) {
			t.Holdout, t.HoldoutConverted = fans, conv
		}
		t.Crossed += fans
		return nil
	}); err != nil {
		return f, fmt.Errorf("counting decisions: %w", err)
	}
	for i := range byTier {
		t := &byTier[i]
		t.Crossed += t.Offered
		t.Eligible += t.Offered
		if t.Offered > 0 && t.Holdout > 0 {
			t.Uplift = float64(t.OfferedConverted)/float64(t.Offered) - float64(t.HoldoutConverted)/float64(t.Holdout)
		}
	}
	f.Tiers = byTier
	return f, nil
}

// PresalePool is the state of a show's presale codes.
type PresalePool struct {
	ShowID    string `json:"show_id"`
	Total     int    `json:"total"`
	Assigned  int    `json:"assigned"`
	Available int    `json:"available"`
}

// ImportPresaleCodes adds codes to the pool of one of an organization's shows;
// codes already in it are skipped. It returns how many were added.
func (s *Store) ImportPresaleCodes(ctx context.Context, orgID, showID string, codes []string) (int, error) {
	var problems []error
	for i, c := range codes {
		if c = strings.TrimSpace(c); c == "" || len(c) > 64 {
			problems = append(problems, fmt.Errorf("codes[%d]: 1 to 64 characters", i))
		}
		if len(problems) >= 20 {
			problems = append(problems, errors.New("codes: more problems not listed"))
			break
		}
	}
	if len(codes) == 0 || len(codes) > 100_000 {
		problems = append(problems, errors.New("codes: 1 to 100000 codes per import"))
	}
	if err := invalid(problems...); err != nil {
		return 0, err
	}
	if err := s.orgShow(ctx, orgID, showID); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO presale_codes (show_id, code) SELECT $1, trim(c) FROM unnest($2::text[]) c
		ON CONFLICT DO NOTHING`, showID, codes)
	if err != nil {
		return 0, fmt.Errorf("importing presale codes: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// orgShow is ErrNotFound unless the show is one of the organization's
// performers': another organization's show reads as no show at all.
func (s *Store) orgShow(ctx context.Context, orgID, showID string) error {
	var owned bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM shows sh JOIN performers p ON p.id = sh.performer_id
		WHERE sh.id = $1 AND p.org_id = $2)`, showID, orgID).Scan(&owned); err != nil {
		return fmt.Errorf("reading show: %w", err)
	}
	if !owned {
		return fmt.Errorf("show %s: %w", showID, ErrNotFound)
	}
	return nil
}

// PresaleCodes returns the state of the pool of one of an organization's shows.
func (s *Store) PresaleCodes(ctx context.Context, orgID, showID string) (PresalePool, error) {
	p := PresalePool{ShowID: showID}
	if err := s.orgShow(ctx, orgID, showID); err != nil {
		return p, err
	}
	err := s.pool.QueryRow(ctx, `SELECT count(*), count(offer_id) FROM presale_codes WHERE show_id = $1`, showID).Scan(&p.Total, &p.Assigned)
	if err != nil {
		return p, fmt.Errorf("reading presale codes: %w", err)
	}
	p.Available = p.Total - p.Assigned
	return p, nil
}

// FanRuleStatus is where one fan stands with one tier of a rule: the offer it
// got, or the last reason it got none.
type FanRuleStatus struct {
	RuleID  string    `json:"rule_id"`
	Tier    int       `json:"tier"`
	Offered bool      `json:"offered"`
	Status  string    `json:"status,omitempty"` // the offer's
	Reason  string    `json:"reason,omitempty"` // why no offer
	Detail  string    `json:"detail,omitempty"`
	Index   float64   `json:"index"`
	EventID string    `json:"event_id"`
	At      time.Time `json:"at"`
}

// FanRuleStatuses returns, for a fan and a performer, each rule tier the fan
// crossed: the offer, or the latest reason for none (F10), for explanations.
func (s *Store) FanRuleStatuses(ctx context.Context, fan uuid.UUID, performerID string) ([]FanRuleStatus, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT rule_id, tier, true, status, '', '', index_value, event_id, issued_at FROM offers
		WHERE fan_id = $1 AND performer_id = $2
		UNION ALL
		SELECT * FROM (SELECT DISTINCT ON (d.rule_id, d.tier) d.rule_id, d.tier, false, '', d.reason, d.detail, d.index_value, d.event_id, d.at
			FROM offer_decisions d JOIN rules r ON r.id = d.rule_id
			WHERE d.fan_id = $1 AND r.performer_id = $2
				AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.fan_id = d.fan_id AND o.rule_id = d.rule_id AND o.tier = d.tier)
			ORDER BY d.rule_id, d.tier, d.at DESC) last
		ORDER BY 1, 2`, fan, performerID)
	if err != nil {
		return nil, fmt.Errorf("reading offer decisions: %w", err)
	}
	var out []FanRuleStatus
	var st FanRuleStatus
	_, err = pgx.ForEachRow(rows, []any{&st.RuleID, &st.Tier, &st.Offered, &st.Status, &st.Reason, &st.Detail, &st.Index, &st.EventID, &st.At},
		func() error {
			out = append(out, st)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("reading offer decisions: %w", err)
	}
	return out, nil
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crescendo-hq/crescendo/offers"
)

// Rules as marketers manage them through the API (F9, F23). A rule belongs
// to the organization that owns its performer; every query here joins
// performers on org_id, so another organization's rule is ErrNotFound,
// exactly as one that does not exist. Rules are never deleted: offers,
// redemptions and the decisions behind the funnel refer to them by id and
// version, so a rule is retired by deactivating it.

// OrgRule is one of an organization's rules as its marketers see it.
type OrgRule struct {
	// Rule is the rule as it was written, with its current version.
	Rule offers.Rule `json:"rule"`
	// Version is the rule's current version: each change of its body adds one.
	Version int `json:"version"`
	// Active rules issue offers; inactive ones are kept, and can be dry-run.
	Active bool `json:"active"`
	// UpdatedAt is when the body last changed.
	UpdatedAt time.Time `json:"updated_at"`
	// Versions lists every version, newest first; only RuleForOrg fills it.
	Versions []RuleVersion `json:"versions,omitempty"`
}

// RuleVersion is one stored version of a rule.
type RuleVersion struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

// RulePut is what PutRuleForOrg did.
type RulePut struct {
	// Version is the rule's version after the write.
	Version int
	// Created tells that the rule did not exist before.
	Created bool
	// Changed tells that the write made a new version; false when the body
	// was the one already stored.
	Changed bool
}

// ruleOfAnotherOrg is the SQLSTATE the rules_stay_in_org trigger raises.
const ruleOfAnotherOrg = "CR001"

// decodeOrgRule fills an OrgRule's rule from its stored body, naming its
// profile as the organization does; ok is false for a row written without a
// body (not a rule marketers wrote).
func decodeOrgRule(o *OrgRule, orgID string, body []byte) (ok bool, err error) {
	if err := json.Unmarshal(body, &o.Rule); err != nil {
		return false, fmt.Errorf("decoding rule: %w", err)
	}
	o.Rule.Version = o.Version
	o.Rule.ProfileID = strings.TrimPrefix(o.Rule.ProfileID, profileKey(orgID, ""))
	return o.Rule.ID != "", nil
}

// RulesForOrg lists an organization's rules by id, without their version lists.
func (s *Store) RulesForOrg(ctx context.Context, orgID string) ([]OrgRule, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.version, r.active, r.updated_at, r.body
		FROM rules r JOIN performers p ON p.id = r.performer_id
		WHERE p.org_id = $1 ORDER BY r.id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	out := []OrgRule{}
	var (
		o    OrgRule
		body []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&o.Version, &o.Active, &o.UpdatedAt, &body}, func() error {
		r := o
		ok, err := decodeOrgRule(&r, orgID, body)
		if ok {
			out = append(out, r)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	return out, nil
}

// RuleForOrg returns one of an organization's rules with its versions.
func (s *Store) RuleForOrg(ctx context.Context, orgID, id string) (OrgRule, error) {
	var (
		o        OrgRule
		body     []byte
		versions []int32
		created  []time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT r.version, r.active, r.updated_at, r.body,
			COALESCE((SELECT array_agg(v.version ORDER BY v.version DESC) FROM rule_versions v WHERE v.rule_id = r.id), '{}'),
			COALESCE((SELECT array_agg(v.created_at ORDER BY v.version DESC) FROM rule_versions v WHERE v.rule_id = r.id), '{}')
		FROM rules r JOIN performers p ON p.id = r.performer_id
		WHERE r.id = $2 AND p.org_id = $1`, orgID, id).Scan(&o.Version, &o.Active, &o.UpdatedAt, &body, &versions, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return OrgRule{}, fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return OrgRule{}, fmt.Errorf("reading rule %s: %w", id, err)
	}
	ok, err := decodeOrgRule(&o, orgID, body)
	if err != nil {
		return OrgRule{}, err
	}
	if !ok {
		return OrgRule{}, fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	o.Versions = make([]RuleVersion, len(versions))
	for i, v := range versions {
		o.Versions[i] = RuleVersion{Version: int(v), CreatedAt: created[i]}
	}
	return o, nil
}

// CheckRuleForOrg reports every problem a rule would be refused for, as an
// *InvalidError, without storing it: what offers.Compile finds against its
// show, a performer that is not the organization's, a show that is not the
// performer's, and a profile the organization cannot see. Each reads the
// same whether the thing does not exist or belongs to another organization.
func (s *Store) CheckRuleForOrg(ctx context.Context, orgID string, r offers.Rule) error {
	_, err := s.checkRuleForOrg(ctx, orgID, r)
	return err
}

// checkRuleForOrg is CheckRuleForOrg; it also returns the key the rule's
// profile is stored under, which is what the rule set compares with its
// performer's profile.
func (s *Store) checkRuleForOrg(ctx context.Context, orgID string, r offers.Rule) (profile string, err error) {
	var problems []error
	show := offers.Show{ID: r.ShowID} // no show found: Compile still checks the rest
	if r.PerformerID != "" {
		var owned bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM performers WHERE id = $1 AND org_id = $2)`,
			r.PerformerID, orgID).Scan(&owned); err != nil {
			return "", fmt.Errorf("reading performer: %w", err)
		}
		if !owned {
			problems = append(problems, fmt.Errorf("performer_id: no performer %q in this organization", r.PerformerID))
		} else if r.ShowID != "" {
			sh, performer, err := showByID(ctx, s.pool, r.ShowID)
			switch {
			case errors.Is(err, ErrNotFound), err == nil && performer != r.PerformerID:
				problems = append(problems, fmt.Errorf("show_id: no show %q of performer %q", r.ShowID, r.PerformerID))
			case err != nil:
				return "", err
			default:
				show = sh
			}
		}
	}
	if r.ProfileID != "" {
		// The organization's own profile by that name first, then a built-in one.
		err := s.pool.QueryRow(ctx, `SELECT id FROM scoring_profiles
			WHERE (org_id = $1 AND id = $2) OR (org_id IS NULL AND id = $3)
			ORDER BY org_id NULLS LAST LIMIT 1`, orgID, profileKey(orgID, r.ProfileID), r.ProfileID).Scan(&profile)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && r.ProfileID == defaultProfileID:
			profile = defaultProfileID
		case errors.Is(err, pgx.ErrNoRows):
			problems = append(problems, fmt.Errorf("profile_id: no profile %q", r.ProfileID))
		case err != nil:
			return "", fmt.Errorf("reading profile: %w", err)
		}
	}
	if _, err := offers.Compile(r, show); err != nil {
		problems = append([]error{err}, problems...)
	}
	return profile, invalid(problems...)
}

// PutRuleForOrg creates or replaces one of an organization's rules, as a new
// version when its body changed. A rule id that another organization's rule
// holds is ErrNotFound (rule ids are unique across organizations); a rule
// that CheckRuleForOrg refuses is an *InvalidError listing every problem.
// A new rule is active at once, as PutRule makes it. The rule's profile_id is
// a name the organization sees; it is stored as the profile's key, the one
// its performers are scored under, and read back as the name.
func (s *Store) PutRuleForOrg(ctx context.Context, orgID string, r offers.Rule) (RulePut, error) {
	var (
		before int // 0: no such rule
		owner  *string
	)
	err := s.pool.QueryRow(ctx, `SELECT r.version, p.org_id FROM rules r JOIN performers p ON p.id = r.performer_id
		WHERE r.id = $1`, r.ID).Scan(&before, &owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		before = 0
	case err != nil:
		return RulePut{}, fmt.Errorf("reading rule %s: %w", r.ID, err)
	case owner == nil || *owner != orgID:
		return RulePut{}, fmt.Errorf("rule %s: %w", r.ID, ErrNotFound)
	}
	if r.ProfileID, err = s.checkRuleForOrg(ctx, orgID, r); err != nil {
		return RulePut{}, err
	}
	// Another organization may create the same id between the read above and
	// this write; the rules_stay_in_org trigger then refuses the overwrite.
	version, err := s.PutRule(ctx, r)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == ruleOfAnotherOrg {
		return RulePut{}, fmt.Errorf("rule %s: %w", r.ID, ErrNotFound)
	}
	if err != nil {
		return RulePut{}, err
	}
	return RulePut{Version: version, Created: before == 0, Changed: version != before}, nil
}

// SetRuleActive activates or deactivates one of an organization's rules and
// reports whether that changed anything. The version stays: it counts
// changes of the rule's body. Every replica's rule set follows at once
// (Postgres NOTIFY on rules).
func (s *Store) SetRuleActive(ctx context.Context, orgID, id string, active bool) (changed bool, err error) {
	var was bool
	err = s.pool.QueryRow(ctx, `WITH cur AS (
			SELECT r.id, r.active FROM rules r JOIN performers p ON p.id = r.performer_id
			WHERE r.id = $2 AND p.org_id = $1 FOR UPDATE OF r
		), changed AS (
			UPDATE rules SET active = $3 FROM cur WHERE rules.id = cur.id AND cur.active <> $3
		)
		SELECT active FROM cur`, orgID, id, active).Scan(&was)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("setting rule %s active: %w", id, err)
	}
	return was != active, nil
}

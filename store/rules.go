package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
)

// PutRule validates a rule against its show and stores it, as a new version
// when it changed. It returns the rule's version. A rule that does not
// compile is an *InvalidError listing every problem.
func (s *Store) PutRule(ctx context.Context, r offers.Rule) (int, error) {
	var version int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		show, performer, err := showByID(ctx, tx, r.ShowID)
		if errors.Is(err, ErrNotFound) {
			return invalid(r.Validate(), fmt.Errorf("show_id: no show %q", r.ShowID))
		}
		if err != nil {
			return err
		}
		if performer != r.PerformerID {
			return invalid(r.Validate(), fmt.Errorf("show_id: show %q is not %q's", r.ShowID, r.PerformerID))
		}
		if _, err := offers.Compile(r, show); err != nil {
			return &InvalidError{Err: err}
		}
		r.Version = 0 // the body is what the marketer wrote; the version is the store's
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding rule: %w", err)
		}
		tiers, _ := json.Marshal(r.Tiers)
		channels := make([]string, len(r.Channels))
		for i, c := range r.Channels {
			channels[i] = string(c)
		}
		err = tx.QueryRow(ctx, `INSERT INTO rules (id, performer_id, show_id, tiers, channels, lifetime_seconds, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id) DO UPDATE SET performer_id = excluded.performer_id, show_id = excluded.show_id,
				tiers = excluded.tiers, channels = excluded.channels, lifetime_seconds = excluded.lifetime_seconds,
				body = excluded.body, updated_at = now(), version = rules.version + 1
			WHERE rules.body IS DISTINCT FROM excluded.body
			RETURNING version`,
			r.ID, r.PerformerID, r.ShowID, tiers, channels, int32(max(1, r.Lifetime/time.Second)), body).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) { // unchanged
			return tx.QueryRow(ctx, `SELECT version FROM rules WHERE id = $1`, r.ID).Scan(&version)
		}
		if err != nil {
			return fmt.Errorf("saving rule %s: %w", r.ID, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rule_versions (rule_id, version, body) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, r.ID, version, body); err != nil {
			return fmt.Errorf("keeping rule version: %w", err)
		}
		for i, t := range r.Tiers {
			if t.Inventory == 0 {
				_, err = tx.Exec(ctx, `DELETE FROM tier_inventory WHERE rule_id = $1 AND tier = $2`, r.ID, i+1)
			} else {
				err = upsertTierInventory(ctx, tx, r.ID, i+1, t.Inventory)
				if isCheckViolation(err) {
					return invalid(fmt.Errorf("tiers[%d].inventory: lower than the offers already redeemed", i))
				}
			}
			if err != nil {
				return fmt.Errorf("saving tier inventory: %w", err)
			}
		}
		if r.Budget == 0 {
			_, err = tx.Exec(ctx, `DELETE FROM rule_budgets WHERE rule_id = $1`, r.ID)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO rule_budgets (rule_id, budget) VALUES ($1, $2)
				ON CONFLICT (rule_id) DO UPDATE SET budget = excluded.budget`, r.ID, r.Budget)
			if isCheckViolation(err) {
				return invalid(errors.New("budget: lower than the offers the rule already issued"))
			}
		}
		if err != nil {
			return fmt.Errorf("saving rule budget: %w", err)
		}
		return nil
	})
	return version, err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func showByID(ctx context.Context, q querier, id string) (offers.Show, string, error) {
	sh := offers.Show{ID: id}
	var performer string
	var start, end *time.Time
	err := q.QueryRow(ctx, `SELECT performer_id, starts_at, venue_lat, venue_lon, onsale_start, onsale_end FROM shows WHERE id = $1`, id).
		Scan(&performer, &sh.StartsAt, &sh.VenueLat, &sh.VenueLon, &start, &end)
	if errors.Is(err, pgx.ErrNoRows) {
		return sh, "", fmt.Errorf("show %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return sh, "", fmt.Errorf("reading show %s: %w", id, err)
	}
	if start != nil {
		sh.OnsaleStart = *start
	}
	if end != nil {
		sh.OnsaleEnd = *end
	}
	return sh, performer, nil
}

// Rules returns the rules, only the active ones when activeOnly.
func (s *Store) Rules(ctx context.Context, activeOnly bool) ([]offers.Rule, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, body FROM rules WHERE active OR NOT $1 ORDER BY id`, activeOnly)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	var out []offers.Rule
	var version int
	var body []byte
	_, err = pgx.ForEachRow(rows, []any{&version, &body}, func() error {
		var r offers.Rule
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decoding rule: %w", err)
		}
		if r.ID == "" {
			return nil // a row written without PutRule: nothing to show
		}
		r.Version = version
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	return out, nil
}

// RuleSet is an in-memory copy of the active rules, compiled, by performer,
// refreshed from the database. It is safe for concurrent use.
type RuleSet struct {
	store *Store
	mu    sync.Mutex // serializes refreshes, as Directory.mu does
	snap  atomic.Pointer[map[string][]*offers.Program]
}

// NewRuleSet loads the active rules.
func (s *Store) NewRuleSet(ctx context.Context) (*RuleSet, error) {
	r := &RuleSet{store: s}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Refresh reloads and compiles the active rules. A rule that no longer
// compiles (its show changed under it) or whose pinned scoring profile is no
// longer its performer's is left out, with a warning: it must not issue
// offers on thresholds measured in other points.
func (r *RuleSet) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows, err := r.store.pool.Query(ctx, `SELECT r.version, r.body, s.starts_at, s.venue_lat, s.venue_lon, s.onsale_start, s.onsale_end,
			COALESCE(p.profile_id, 'default')
		FROM rules r JOIN shows s ON s.id = r.show_id JOIN performers p ON p.id = r.performer_id
		WHERE r.active ORDER BY r.id`)
	if err != nil {
		return fmt.Errorf("reading rules: %w", err)
	}
	m := make(map[string][]*offers.Program)
	var (
		version    int
		body       []byte
		show       offers.Show
		start, end *time.Time
		profile    string
	)
	_, err = pgx.ForEachRow(rows, []any{&version, &body, &show.StartsAt, &show.VenueLat, &show.VenueLon, &start, &end, &profile}, func() error {
		var rule offers.Rule
		if err := json.Unmarshal(body, &rule); err != nil {
			return fmt.Errorf("decoding rule: %w", err)
		}
		rule.Version = version
		sh := show
		sh.ID = rule.ShowID
		if start != nil {
			sh.OnsaleStart = *start
		}
		if end != nil {
			sh.OnsaleEnd = *end
		}
		if rule.ProfileID != "" && rule.ProfileID != profile {
			r.store.logger.Warn("rule left out: its performer is scored under another profile",
				slog.String("rule", rule.ID), slog.String("rule_profile", rule.ProfileID), slog.String("performer_profile", profile))
			return nil
		}
		p, err := offers.Compile(rule, sh)
		if err != nil {
			r.store.logger.Warn("rule left out: it no longer compiles", slog.String("rule", rule.ID), slog.Any("error", err))
			return nil
		}
		m[rule.PerformerID] = append(m[rule.PerformerID], p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading rules: %w", err)
	}
	r.snap.Store(&m)
	return nil
}

// ForPerformer returns the active rules whose thresholds are in the performer's index.
func (r *RuleSet) ForPerformer(performerID string) []*offers.Program {
	return (*r.snap.Load())[performerID]
}

// CompiledRule returns a rule, active or not, compiled against its show, for
// dry runs.
func (s *Store) CompiledRule(ctx context.Context, id string) (*offers.Program, error) {
	var version int
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT version, body FROM rules WHERE id = $1`, id).Scan(&version, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("rule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading rule %s: %w", id, err)
	}
	var r offers.Rule
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding rule %s: %w", id, err)
	}
	r.Version = version
	show, _, err := showByID(ctx, s.pool, r.ShowID)
	if err != nil {
		return nil, err
	}
	p, err := offers.Compile(r, show)
	if err != nil {
		return nil, &InvalidError{Err: err}
	}
	return p, nil
}

// FirstReachable returns, per fan, the first of channels the fan has a
// contact point for: push when enabled, SMS with a phone, email with an address.
func (s *Store) FirstReachable(ctx context.Context, fans []uuid.UUID, channels []offers.Channel) (map[uuid.UUID]offers.Channel, error) {
	out := make(map[uuid.UUID]offers.Channel, len(fans))
	if len(fans) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, push_enabled, phone IS NOT NULL, email IS NOT NULL FROM fans WHERE id = ANY($1)`, fans)
	if err != nil {
		return nil, fmt.Errorf("reading contact points: %w", err)
	}
	var id uuid.UUID
	var push, phone, email bool
	_, err = pgx.ForEachRow(rows, []any{&id, &push, &phone, &email}, func() error {
		for _, c := range channels {
			if (c == offers.ChannelPush && push) || (c == offers.ChannelSMS && phone) || (c == offers.ChannelEmail && email) {
				out[id] = c
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading contact points: %w", err)
	}
	return out, nil
}

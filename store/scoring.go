package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/scoring"
)

// PutProfile creates or replaces a scoring profile.
func (s *Store) PutProfile(ctx context.Context, p scoring.Profile) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("validating profile: %w", err)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding profile: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO scoring_profiles (id, body) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = now()`, p.ID, body); err != nil {
		return fmt.Errorf("saving profile %s: %w", p.ID, err)
	}
	return nil
}

// PerformerScoring is what scoring needs of a performer beyond its name.
type PerformerScoring struct {
	Aliases   []string
	Charities []string
	ProfileID string // "" for the default profile
}

// SetPerformerScoring sets a performer's aliases, listed charities and profile.
func (s *Store) SetPerformerScoring(ctx context.Context, performerID string, ps PerformerScoring) error {
	tag, err := s.pool.Exec(ctx, `UPDATE performers SET aliases = $2, charities = $3, profile_id = NULLIF($4, '') WHERE id = $1`,
		performerID, nonNil(ps.Aliases), nonNil(ps.Charities), ps.ProfileID)
	if err != nil {
		return fmt.Errorf("saving performer scoring: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("performer %s: %w", performerID, ErrNotFound)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ScoringConfig reads profiles and performers, each performer with the date of
// its next show (the six-month affinity bonus counts towards it).
func (s *Store) ScoringConfig(ctx context.Context, now time.Time) (scoring.Config, error) {
	var cfg scoring.Config
	rows, err := s.pool.Query(ctx, `SELECT body FROM scoring_profiles ORDER BY id`)
	if err != nil {
		return cfg, fmt.Errorf("reading profiles: %w", err)
	}
	var body []byte
	if _, err := pgx.ForEachRow(rows, []any{&body}, func() error {
		var p scoring.Profile
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("decoding profile: %w", err)
		}
		cfg.Profiles = append(cfg.Profiles, p)
		return nil
	}); err != nil {
		return cfg, fmt.Errorf("reading profiles: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT p.id, p.name, p.aliases, p.charities, COALESCE(p.profile_id, ''),
			(SELECT min(starts_at) FROM shows sh WHERE sh.performer_id = p.id AND sh.starts_at > $1)
		FROM performers p ORDER BY p.id`, now)
	if err != nil {
		return cfg, fmt.Errorf("reading performers: %w", err)
	}
	var (
		perf    scoring.Performer
		name    string
		aliases []string
		next    *time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&perf.ID, &name, &aliases, &perf.Charities, &perf.ProfileID, &next}, func() error {
		p := perf
		p.Names = append([]string{name}, aliases...)
		if next != nil {
			p.ShowDate = *next
		}
		cfg.Performers = append(cfg.Performers, p)
		return nil
	}); err != nil {
		return cfg, fmt.Errorf("reading performers: %w", err)
	}
	return cfg, nil
}

// Scorers keeps the scorer built from the database's profiles and performers,
// rebuilt on Refresh. It is safe for concurrent use.
type Scorers struct {
	store *Store
	mu    sync.Mutex // serializes refreshes, as Directory.mu does
	cur   atomic.Pointer[scoring.Scorer]
}

// NewScorers builds the scorer.
func (s *Store) NewScorers(ctx context.Context) (*Scorers, error) {
	sc := &Scorers{store: s}
	if err := sc.Refresh(ctx); err != nil {
		return nil, err
	}
	return sc, nil
}

// Refresh rebuilds the scorer; a configuration that does not compile keeps the old one.
func (sc *Scorers) Refresh(ctx context.Context) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	cfg, err := sc.store.ScoringConfig(ctx, time.Now())
	if err != nil {
		return err
	}
	scorer, err := scoring.NewScorer(cfg)
	if err != nil {
		return fmt.Errorf("building scorer: %w", err)
	}
	sc.cur.Store(scorer)
	return nil
}

// Scorer returns the current scorer.
func (sc *Scorers) Scorer() *scoring.Scorer { return sc.cur.Load() }

// Contributions returns what each event contributed to a pair, oldest first.
func (s *Store) Contributions(ctx context.Context, fan uuid.UUID, performerID string) ([]scoring.Contribution, error) {
	rows, err := s.pool.Query(ctx, `SELECT signal, points, event_id, at, detail FROM contributions
		WHERE fan_id = $1 AND performer_id = $2 ORDER BY at`, fan, performerID)
	if err != nil {
		return nil, fmt.Errorf("reading contributions: %w", err)
	}
	var out []scoring.Contribution
	var c scoring.Contribution
	var signal string
	if _, err := pgx.ForEachRow(rows, []any{&signal, &c.Points, &c.EventID, &c.At, &c.Detail}, func() error {
		c.Signal = scoring.Signal(signal)
		out = append(out, c)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading contributions: %w", err)
	}
	return out, nil
}

// FanFact returns the fan's latest friend count, if any.
func (s *Store) FanFact(ctx context.Context, fan uuid.UUID) (*scoring.FanFact, error) {
	var f scoring.FanFact
	err := s.pool.QueryRow(ctx, `SELECT friend_count, event_id, at FROM fan_facts WHERE fan_id = $1`, fan).Scan(&f.FriendCount, &f.EventID, &f.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading fan facts: %w", err)
	}
	return &f, nil
}

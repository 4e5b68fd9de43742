package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
)

// botThresholds judge the batch signals and the combined class: those of
// the default scoring profile. The live signals were judged by the consumer
// under the profile of the performer they concern.
func botThresholds() bots.Thresholds { return scoring.DefaultProfile().BotThresholds() }

// execQuerier is what both a pool and a transaction answer.
type execQuerier interface {
	querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// batchEvidence is what the scheduled job found about a fan.
type batchEvidence struct {
	Reactions bots.ReactionStats `json:"reactions"`
	Ring      *bots.RingEvidence `json:"ring,omitempty"`
}

// writeTies replaces the social ties of the fans whose social graph changed.
func writeTies(ctx context.Context, tx pgx.Tx, facts []pipeline.FanFact) error {
	for _, f := range facts {
		if f.Partner == "" {
			continue
		}
		if _, err := tx.Exec(ctx, `DELETE FROM social_ties WHERE fan_id = $1 AND partner_id = $2`, f.Fan, f.Partner); err != nil {
			return fmt.Errorf("replacing social ties: %w", err)
		}
		weights := map[string]float64{}
		for _, id := range f.Friends {
			weights[id] = max(weights[id], 1)
		}
		for _, in := range f.Interactions {
			weights[in.With] += float64(in.Count)
		}
		if len(weights) == 0 {
			continue
		}
		others, ws := make([]string, 0, len(weights)), make([]float64, 0, len(weights))
		for o, w := range weights {
			others, ws = append(others, o), append(ws, w)
		}
		// The fan may have been erased since the event: then nothing is written.
		if _, err := tx.Exec(ctx, `INSERT INTO social_ties (fan_id, partner_id, other_user, weight)
			SELECT $1, $2, o, w FROM unnest($3::text[], $4::float8[]) AS t(o, w) WHERE EXISTS (SELECT 1 FROM fans WHERE id = $1)`,
			f.Fan, f.Partner, others, ws); err != nil {
			return fmt.Errorf("writing social ties: %w", err)
		}
	}
	return nil
}

// writeClassified keeps the consumer's live classifications and brings each
// fan's class up to date.
func writeClassified(ctx context.Context, tx pgx.Tx, cs []pipeline.Classified) error {
	for _, c := range cs {
		live, err := json.Marshal(c.Classification)
		if err != nil {
			return fmt.Errorf("encoding live classification: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO bot_evidence (fan_id, live) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM fans WHERE id = $1)
			ON CONFLICT (fan_id) DO UPDATE SET live = excluded.live, updated_at = now()`, c.Fan, live)
		if err != nil {
			return fmt.Errorf("writing live classification: %w", err)
		}
		if tag.RowsAffected() == 0 {
			continue // erased
		}
		if _, err := reclassify(ctx, tx, c.Fan); err != nil {
			return err
		}
	}
	return nil
}

// reclassify recomputes a fan's class from the live and batch evidence, the
// watch list and any override, and stores it where queues read it (F14).
func reclassify(ctx context.Context, q execQuerier, fan uuid.UUID) (bots.Classification, error) {
	var (
		live, batch       []byte
		watched           bool
		watchNote         string
		override, ovrNote *string
	)
	err := q.QueryRow(ctx, `SELECT COALESCE(e.live, '{}'), COALESCE(e.batch, '{}'), w.fan_id IS NOT NULL, COALESCE(w.note, ''), o.class, o.note
		FROM fans f LEFT JOIN bot_evidence e ON e.fan_id = f.id LEFT JOIN reseller_watch w ON w.fan_id = f.id
		LEFT JOIN bot_overrides o ON o.fan_id = f.id WHERE f.id = $1`, fan).Scan(&live, &batch, &watched, &watchNote, &override, &ovrNote)
	if errors.Is(err, pgx.ErrNoRows) {
		return bots.Classification{}, fmt.Errorf("fan %s: %w", fan, ErrNotFound)
	}
	if err != nil {
		return bots.Classification{}, fmt.Errorf("reading bot evidence: %w", err)
	}
	var lc bots.Classification
	var be batchEvidence
	if err := json.Unmarshal(live, &lc); err != nil {
		return bots.Classification{}, fmt.Errorf("decoding live classification: %w", err)
	}
	if err := json.Unmarshal(batch, &be); err != nil {
		return bots.Classification{}, fmt.Errorf("decoding batch evidence: %w", err)
	}
	th := botThresholds()
	bc := bots.Classify(bots.Evidence{Reactions: be.Reactions, Ring: be.Ring, Watched: watched, WatchNote: watchNote}, th)
	c := bots.Combine(th, lc, bc)
	overridden := override != nil
	if overridden {
		c = bots.Override(c, bots.Class(*override), *ovrNote)
	}
	reasons, err := json.Marshal(c.Reasons)
	if err != nil {
		return c, fmt.Errorf("encoding reasons: %w", err)
	}
	summary := ""
	for i, r := range c.Reasons {
		if i > 0 {
			summary += "; "
		}
		summary += string(r.Signal) + ": " + r.Evidence
	}
	if _, err := q.Exec(ctx, `INSERT INTO fan_classifications (fan_id, class, reason, reasons, overridden) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (fan_id) DO UPDATE SET class = excluded.class, reason = excluded.reason, reasons = excluded.reasons,
			overridden = excluded.overridden, updated_at = now()`, fan, string(c.Class), summary, reasons, overridden); err != nil {
		return c, fmt.Errorf("saving fan classification: %w", err)
	}
	return c, nil
}

// BotClassification is a fan's class with its reasons, as the explanation
// API shows it.
type BotClassification struct {
	Class      bots.Class    `json:"class"`
	Reasons    []bots.Reason `json:"reasons"`
	Overridden bool          `json:"overridden"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// FanClassification returns the fan's class; a fan never classified is human
// with no reasons.
func (s *Store) FanClassification(ctx context.Context, fan uuid.UUID) (BotClassification, error) {
	var c BotClassification
	var class string
	var reasons []byte
	err := s.pool.QueryRow(ctx, `SELECT class, reasons, overridden, updated_at FROM fan_classifications WHERE fan_id = $1`, fan).
		Scan(&class, &reasons, &c.Overridden, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return BotClassification{Class: bots.Human, Reasons: []bots.Reason{}}, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading fan classification: %w", err)
	}
	c.Class = bots.Class(class)
	if class == "unknown" {
		c.Class = bots.Human
	}
	if err := json.Unmarshal(reasons, &c.Reasons); err != nil {
		return c, fmt.Errorf("decoding reasons: %w", err)
	}
	return c, nil
}

// SetBotOverride sets a marketer's class for a fan, replacing any earlier
// one, and logs it with who set it and why.
func (s *Store) SetBotOverride(ctx context.Context, fan uuid.UUID, class bots.Class, note, by string) (BotClassification, error) {
	if !class.Valid() {
		return BotClassification{}, invalid(fmt.Errorf("class: must be %q, %q or %q; got %q", bots.Human, bots.Suspect, bots.Automated, class))
	}
	if note == "" {
		return BotClassification{}, invalid(errors.New("note: required: say why"))
	}
	return s.changeOverride(ctx, fan, &class, note, by)
}

// ClearBotOverride removes a fan's override, logged; the evidence decides again.
func (s *Store) ClearBotOverride(ctx context.Context, fan uuid.UUID, note, by string) (BotClassification, error) {
	return s.changeOverride(ctx, fan, nil, note, by)
}

func (s *Store) changeOverride(ctx context.Context, fan uuid.UUID, class *bots.Class, note, by string) (BotClassification, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var previous string
		err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT class FROM fan_classifications WHERE fan_id = f.id), 'human')
			FROM fans f WHERE f.id = $1 FOR UPDATE`, fan).Scan(&previous)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("fan %s: %w", fan, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading fan for override: %w", err)
		}
		var logged *string
		if class != nil {
			v := string(*class)
			logged = &v
			if _, err := tx.Exec(ctx, `INSERT INTO bot_overrides (fan_id, class, note, set_by) VALUES ($1, $2, $3, $4)
				ON CONFLICT (fan_id) DO UPDATE SET class = excluded.class, note = excluded.note, set_by = excluded.set_by, set_at = now()`,
				fan, v, note, by); err != nil {
				return fmt.Errorf("saving override: %w", err)
			}
		} else {
			tag, err := tx.Exec(ctx, `DELETE FROM bot_overrides WHERE fan_id = $1`, fan)
			if err != nil {
				return fmt.Errorf("clearing override: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("override of fan %s: %w", fan, ErrNotFound)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bot_override_log (fan_id, class, previous, note, set_by) VALUES ($1, $2, $3, $4, $5)`,
			fan, logged, previous, note, by); err != nil {
			return fmt.Errorf("logging override: %w", err)
		}
		_, err = reclassify(ctx, tx, fan)
		return err
	})
	if err != nil {
		return BotClassification{}, err
	}
	return s.FanClassification(ctx, fan)
}

// OverrideLogEntry is one line of the override audit log.
type OverrideLogEntry struct {
	Class    *bots.Class `json:"class"` // nil: cleared
	Previous bots.Class  `json:"previous"`
	Note     string      `json:"note"`
	SetBy    string      `json:"set_by"`
	At       time.Time   `json:"at"`
}

// BotOverrideLog returns a fan's override history, oldest first.
func (s *Store) BotOverrideLog(ctx context.Context, fan uuid.UUID) ([]OverrideLogEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT class, previous, note, set_by, at FROM bot_override_log WHERE fan_id = $1 ORDER BY id`, fan)
	if err != nil {
		return nil, fmt.Errorf("reading override log: %w", err)
	}
	out := []OverrideLogEntry{}
	var e OverrideLogEntry
	var class *string
	var prev string
	_, err = pgx.ForEachRow(rows, []any{&class, &prev, &e.Note, &e.SetBy, &e.At}, func() error {
		e.Class = nil
		if class != nil {
			c := bots.Class(*class)
			e.Class = &c
		}
		e.Previous = bots.Class(prev)
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading override log: %w", err)
	}
	return out, nil
}

// WatchReseller puts a fan on the reseller watch list (F13), or updates the note.
func (s *Store) WatchReseller(ctx context.Context, fan uuid.UUID, note, by string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO reseller_watch (fan_id, note, added_by) VALUES ($1, $2, $3)
			ON CONFLICT (fan_id) DO UPDATE SET note = excluded.note, added_by = excluded.added_by`, fan, note, by)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("fan %s: %w", fan, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("watching reseller: %w", err)
		}
		_, err = reclassify(ctx, tx, fan)
		return err
	})
}

// UnwatchReseller takes a fan off the watch list.
func (s *Store) UnwatchReseller(ctx context.Context, fan uuid.UUID) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM reseller_watch WHERE fan_id = $1`, fan)
		if err != nil {
			return fmt.Errorf("unwatching reseller: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("watched fan %s: %w", fan, ErrNotFound)
		}
		_, err = reclassify(ctx, tx, fan)
		return err
	})
}

// WatchedReseller is one entry of the watch list.
type WatchedReseller struct {
	FanID   uuid.UUID `json:"fan_id"`
	Note    string    `json:"note"`
	AddedBy string    `json:"added_by"`
	AddedAt time.Time `json:"added_at"`
}

// WatchedResellers lists the entries an organization added, newest first:
// by is "<org id>/<token id>", and one organization does not learn which
// fans another watches.
func (s *Store) WatchedResellers(ctx context.Context, orgID string) ([]WatchedReseller, error) {
	rows, err := s.pool.Query(ctx, `SELECT fan_id, note, added_by, added_at FROM reseller_watch
		WHERE split_part(added_by, '/', 1) = $1 ORDER BY added_at DESC, fan_id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("reading watch list: %w", err)
	}
	out := []WatchedReseller{}
	var w WatchedReseller
	if _, err := pgx.ForEachRow(rows, []any{&w.FanID, &w.Note, &w.AddedBy, &w.AddedAt}, func() error {
		out = append(out, w)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading watch list: %w", err)
	}
	return out, nil
}

// DetectBots is the scheduled job of the batch signals (F13): rings among
// the fans' social ties (gonum's Louvain communities) and the distribution of
// each fan's reaction times to offers over the last 180 days. It stores what
// changed and reclassifies those fans, and returns how many changed.
func (s *Store) DetectBots(ctx context.Context, now time.Time) (int64, error) {
	th := botThresholds()
	rows, err := s.pool.Query(ctx, `SELECT t.fan_id::text, a.fan_id::text, t.weight FROM social_ties t
		JOIN linked_accounts a ON a.partner_id = t.partner_id AND a.partner_user_id = t.other_user`)
	if err != nil {
		return 0, fmt.Errorf("reading social ties: %w", err)
	}
	var ties []bots.Tie
	var tie bots.Tie
	if _, err := pgx.ForEachRow(rows, []any{&tie.A, &tie.B, &tie.Weight}, func() error {
		ties = append(ties, tie)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("reading social ties: %w", err)
	}
	rings := bots.DetectRings(ties, th, 1)

	found := map[uuid.UUID]*batchEvidence{}
	get := func(f uuid.UUID) *batchEvidence {
		if found[f] == nil {
			found[f] = &batchEvidence{}
		}
		return found[f]
	}
	for id, ev := range rings {
		if f, err := uuid.Parse(id); err == nil {
			get(f).Ring = &ev
		}
	}
	rows, err = s.pool.Query(ctx, `SELECT fan_id, array_agg(sent_to_redeemed_ms), array_agg(by_agent) FROM redemptions
		WHERE redeemed_at > $1 GROUP BY fan_id`, now.Add(-180*24*time.Hour))
	if err != nil {
		return 0, fmt.Errorf("reading reaction times: %w", err)
	}
	var fan uuid.UUID
	var ms []int64
	var byAgent []bool
	if _, err := pgx.ForEachRow(rows, []any{&fan, &ms, &byAgent}, func() error {
		rs := make([]bots.Reaction, len(ms))
		for i := range ms {
			rs[i] = bots.Reaction{Ms: ms[i], ByAgent: i < len(byAgent) && byAgent[i]}
		}
		get(fan).Reactions = bots.SummarizeReactions(rs, th)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("reading reaction times: %w", err)
	}

	// Fans whose batch evidence is gone (left a ring) are cleared as well.
	rows, err = s.pool.Query(ctx, `SELECT fan_id FROM bot_evidence WHERE batch <> '{}'`)
	if err != nil {
		return 0, fmt.Errorf("reading batch evidence: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&fan}, func() error {
		get(fan)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("reading batch evidence: %w", err)
	}
	var changed int64
	for f, be := range found {
		batch := []byte("{}")
		if be.Ring != nil || be.Reactions.N > 0 {
			if batch, err = json.Marshal(be); err != nil {
				return changed, fmt.Errorf("encoding batch evidence: %w", err)
			}
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO bot_evidence (fan_id, batch) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM fans WHERE id = $1)
				ON CONFLICT (fan_id) DO UPDATE SET batch = excluded.batch, updated_at = now() WHERE bot_evidence.batch <> excluded.batch`, f, batch)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			changed++
			_, err = reclassify(ctx, tx, f)
			return err
		})
		if err != nil {
			return changed, fmt.Errorf("storing batch evidence: %w", err)
		}
	}
	return changed, nil
}

// classifiedAutomated reports whether the fan is classified automated, and why.
func classifiedAutomated(ctx context.Context, q querier, fan uuid.UUID) (string, bool, error) {
	var why string
	err := q.QueryRow(ctx, `SELECT reason FROM fan_classifications WHERE fan_id = $1 AND class = 'automated'`, fan).Scan(&why)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading fan classification: %w", err)
	}
	return why, true, nil
}

// FanKnownToOrg reports whether the fan has activity or offers for one of
// the organization's performers: a marketer may only classify or watch
// fans their organization has seen.
func (s *Store) FanKnownToOrg(ctx context.Context, orgID string, fan uuid.UUID) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM offers o JOIN performers p ON p.id = o.performer_id
			WHERE o.fan_id = $2 AND p.org_id = $1)
		OR EXISTS (SELECT 1 FROM contributions c JOIN performers p ON p.id = c.performer_id WHERE c.fan_id = $2 AND p.org_id = $1)`,
		orgID, fan).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("checking fan against organization: %w", err)
	}
	return ok, nil
}

// ClassShares counts, by class, the fans with index contributions to the
// organization's performers; a fan never classified counts as unknown.
func (s *Store) ClassShares(ctx context.Context, orgID string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT COALESCE(fc.class, 'unknown'), count(*)
		FROM (SELECT DISTINCT c.fan_id FROM contributions c JOIN performers p ON p.id = c.performer_id WHERE p.org_id = $1) f
		LEFT JOIN fan_classifications fc ON fc.fan_id = f.fan_id
		GROUP BY 1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("counting fans by class: %w", err)
	}
	out := map[string]int{}
	var class string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&class, &n}, func() error {
		out[class] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("counting fans by class: %w", err)
	}
	return out, nil
}

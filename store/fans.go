package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/fans"
)

// Registration is a partner registering its signed-in user as a fan (F1) with consent (F2).
type Registration struct {
	PartnerID     string
	PartnerUserID string
	// Profile replaces the fan's profile; nil keeps it (only with LinkCode).
	Profile *fans.Profile
	Consent fans.Consent
	Actor   string // who acted, for the ledger: e.g. "partner:streamly"
	// LinkCode, when set, links the account to the fan that code was made for
	// (see CreateLinkCode) instead of registering a new fan.
	LinkCode string
}

// RegisterFan creates the fan and links the partner account, or, when the
// account is already linked, updates the fan's profile and consent. With a
// link code it links the account to that code's fan instead (ErrLinkCode for
// a bad code, ErrLinkedElsewhere for an account linked to another fan). It
// returns the fan id and whether the fan was created.
func (s *Store) RegisterFan(ctx context.Context, r Registration) (uuid.UUID, bool, error) {
	var fan uuid.UUID
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		created = false
		err := tx.QueryRow(ctx, `SELECT fan_id FROM linked_accounts WHERE partner_id = $1 AND partner_user_id = $2 FOR UPDATE`,
			r.PartnerID, r.PartnerUserID).Scan(&fan)
		linked := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("looking up account: %w", err)
		}
		newLink := !linked
		switch {
		case r.LinkCode != "":
			codeFan, err := useLinkCode(ctx, tx, r.LinkCode)
			if err != nil {
				return err
			}
			if linked && codeFan != fan {
				return ErrLinkedElsewhere
			}
			fan = codeFan
		case !linked:
			fan, created = uuid.New(), true
		}
		if r.Profile == nil && created {
			return errors.New("registering a fan: a profile is required")
		}
		if err := saveProfile(ctx, tx, fan, r.Profile); err != nil {
			return err
		}
		scope := scopeStrings(r.Consent.Scope)
		if _, err := tx.Exec(ctx, `INSERT INTO linked_accounts (partner_id, partner_user_id, fan_id, scope) VALUES ($1, $2, $3, $4)
			ON CONFLICT (partner_id, partner_user_id) DO UPDATE SET scope = excluded.scope, updated_at = now()`,
			r.PartnerID, r.PartnerUserID, fan, scope); err != nil {
			return fmt.Errorf("linking account: %w", err)
		}
		action := "change"
		if newLink {
			action = "grant"
		}
		return ledger(ctx, tx, fan, r.PartnerID, r.PartnerUserID, action, scope, r.Consent.Wording, r.Actor)
	})
	if err != nil {
		return uuid.Nil, false, err
	}
	return fan, created, nil
}

// saveProfile creates the fan or replaces its profile; a nil profile keeps it.
func saveProfile(ctx context.Context, tx pgx.Tx, fan uuid.UUID, p *fans.Profile) error {
	if p == nil {
		return nil
	}
	push := p.PushEnabled == nil || *p.PushEnabled
	if _, err := tx.Exec(ctx, `INSERT INTO fans (id, display_name, phone, email, time_zone, home_lat, home_lon, push_enabled)
		VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, phone = excluded.phone, email = excluded.email,
			time_zone = excluded.time_zone, home_lat = excluded.home_lat, home_lon = excluded.home_lon,
			push_enabled = excluded.push_enabled, updated_at = now()`,
		fan, p.DisplayName, p.Phone, p.Email, p.TimeZone, p.HomeLat, p.HomeLon, push); err != nil {
		return fmt.Errorf("saving fan: %w", err)
	}
	return nil
}

// SetConsent replaces the scope of a linked account's consent.
func (s *Store) SetConsent(ctx context.Context, partnerID, userID string, c fans.Consent, actor string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var fan uuid.UUID
		scope := scopeStrings(c.Scope)
		err := tx.QueryRow(ctx, `UPDATE linked_accounts SET scope = $3, updated_at = now()
			WHERE partner_id = $1 AND partner_user_id = $2 RETURNING fan_id`, partnerID, userID, scope).Scan(&fan)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("account %s/%s: %w", partnerID, userID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("changing consent: %w", err)
		}
		return ledger(ctx, tx, fan, partnerID, userID, "change", scope, c.Wording, actor)
	})
}

// WithdrawConsent unlinks the account: from then on its events are dropped.
func (s *Store) WithdrawConsent(ctx context.Context, partnerID, userID, wording, actor string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var fan uuid.UUID
		err := tx.QueryRow(ctx, `DELETE FROM linked_accounts WHERE partner_id = $1 AND partner_user_id = $2 RETURNING fan_id`,
			partnerID, userID).Scan(&fan)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("account %s/%s: %w", partnerID, userID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("withdrawing consent: %w", err)
		}
		return ledger(ctx, tx, fan, partnerID, userID, "withdraw", nil, wording, actor)
	})
}

// EraseFan deletes a fan's personal data everywhere it is stored (F3): the fan,
// linked accounts, offers, delivery records, index contributions and facts go; the consent ledger keeps
// only the fan's random id and what was done, not who the fan was; a tombstone
// tells partition owners to drop the fan's index and sessions.
func (s *Store) EraseFan(ctx context.Context, fan uuid.UUID, actor string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM fans WHERE id = $1`, fan)
		if err != nil {
			return fmt.Errorf("erasing fan: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("fan %s: %w", fan, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM contributions WHERE fan_id = $1`, fan); err != nil {
			return fmt.Errorf("erasing contributions: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM offer_decisions WHERE fan_id = $1`, fan); err != nil {
			return fmt.Errorf("erasing offer decisions: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM conversions WHERE fan_id = $1`, fan); err != nil {
			return fmt.Errorf("erasing conversions: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE consent_ledger SET partner_user_id = '', wording = '', address = NULL WHERE fan_id = $1`, fan); err != nil {
			return fmt.Errorf("scrubbing consent ledger: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO erased_fans (fan_id) VALUES ($1) ON CONFLICT DO NOTHING`, fan); err != nil {
			return fmt.Errorf("recording erasure: %w", err)
		}
		// The directory trigger fires on the cascaded unlinking; make sure it also
		// fires for a fan who had no linked account left.
		if _, err := tx.Exec(ctx, `SELECT pg_notify('crescendo_directory', 'erased_fans')`); err != nil {
			return fmt.Errorf("notifying erasure: %w", err)
		}
		return ledger(ctx, tx, fan, "", "", "erase", nil, "", actor)
	})
}

func ledger(ctx context.Context, tx pgx.Tx, fan uuid.UUID, partnerID, userID, action string, scope []string, wording, actor string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO consent_ledger (fan_id, partner_id, partner_user_id, action, scope, wording, actor)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, fan, partnerID, userID, action, scope, wording, actor); err != nil {
		return fmt.Errorf("writing consent ledger: %w", err)
	}
	return nil
}

func scopeStrings(s fans.Scope) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s))
	for i, t := range s {
		out[i] = string(t)
	}
	return out
}

// FanRecord is a fan as a partner sees it through one of its users.
type FanRecord struct {
	ID      uuid.UUID    `json:"id"`
	Profile fans.Profile `json:"profile"`
	Scope   fans.Scope   `json:"scope,omitempty"`
	Created time.Time    `json:"created_at"`
}

// FanRecordByAccount returns the fan linked to a partner account.
func (s *Store) FanRecordByAccount(ctx context.Context, partnerID, userID string) (FanRecord, error) {
	var r FanRecord
	var phone, email *string
	var scope []string
	var push bool
	err := s.pool.QueryRow(ctx, `SELECT f.id, f.display_name, f.phone, f.email, f.time_zone, f.home_lat, f.home_lon,
			f.push_enabled, f.created_at, l.scope
		FROM linked_accounts l JOIN fans f ON f.id = l.fan_id WHERE l.partner_id = $1 AND l.partner_user_id = $2`,
		partnerID, userID).Scan(&r.ID, &r.Profile.DisplayName, &phone, &email, &r.Profile.TimeZone, &r.Profile.HomeLat,
		&r.Profile.HomeLon, &push, &r.Created, &scope)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("account %s/%s: %w", partnerID, userID, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("reading fan: %w", err)
	}
	if phone != nil {
		r.Profile.Phone = *phone
	}
	if email != nil {
		r.Profile.Email = *email
	}
	r.Profile.PushEnabled = &push
	if scope != nil {
		r.Scope = fans.Scope{}
		for _, t := range scope {
			r.Scope = append(r.Scope, events.Type(t))
		}
	}
	return r, nil
}

// LedgerEntry is one consent ledger row.
type LedgerEntry struct {
	Action     string    `json:"action"`
	PartnerID  string    `json:"partner_id"`
	Scope      []string  `json:"scope,omitempty"`
	Wording    string    `json:"wording"`
	Actor      string    `json:"actor"`
	RecordedAt time.Time `json:"recorded_at"`
	// Channel is the channel an opt-out or opt-in covers; "" for consent
	// to the whole service.
	Channel string `json:"channel,omitempty"`
}

// ConsentLedger returns a fan's consent history, oldest first.
func (s *Store) ConsentLedger(ctx context.Context, fan uuid.UUID) ([]LedgerEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT action, partner_id, scope, wording, actor, recorded_at, COALESCE(channel, '') FROM consent_ledger
		WHERE fan_id = $1 ORDER BY recorded_at, id`, fan)
	if err != nil {
		return nil, fmt.Errorf("reading consent ledger: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LedgerEntry])
	if err != nil {
		return nil, fmt.Errorf("reading consent ledger: %w", err)
	}
	return out, nil
}

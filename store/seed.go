package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Partner is a partner app that publishes events.
type Partner struct {
	ID, Name string
	APIKey   string // stored only as a hash
}

// PutPartner creates or updates a partner.
func (s *Store) PutPartner(ctx context.Context, p Partner) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO partners (id, name, api_key_hash) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, api_key_hash = excluded.api_key_hash`,
		p.ID, p.Name, HashKey(p.APIKey))
	if err != nil {
		return fmt.Errorf("saving partner %s: %w", p.ID, err)
	}
	return nil
}

// PutPerformer creates or updates a performer.
func (s *Store) PutPerformer(ctx context.Context, id, name string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO performers (id, name) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name`, id, name)
	if err != nil {
		return fmt.Errorf("saving performer %s: %w", id, err)
	}
	return nil
}

// Show is a performer's show.
type Show struct {
	ID, PerformerID, Name string
	StartsAt              time.Time
	VenueName             string
	VenueLat, VenueLon    float64
	// OnsaleStart and OnsaleEnd bound the general sale; zero: not set.
	OnsaleStart, OnsaleEnd time.Time
}

// PutShow creates or updates a show.
func (s *Store) PutShow(ctx context.Context, sh Show) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO shows (id, performer_id, name, starts_at, venue_name, venue_lat, venue_lon, onsale_start, onsale_end)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET performer_id = excluded.performer_id, name = excluded.name,
			starts_at = excluded.starts_at, venue_name = excluded.venue_name,
			venue_lat = excluded.venue_lat, venue_lon = excluded.venue_lon,
			onsale_start = excluded.onsale_start, onsale_end = excluded.onsale_end`,
		sh.ID, sh.PerformerID, sh.Name, sh.StartsAt, sh.VenueName, sh.VenueLat, sh.VenueLon, nullTime(sh.OnsaleStart), nullTime(sh.OnsaleEnd))
	if err != nil {
		return fmt.Errorf("saving show %s: %w", sh.ID, err)
	}
	return nil
}

// Fan is a pre-registered fan (F1).
type Fan struct {
	ID          uuid.UUID
	DisplayName string
	Phone       string // E.164, or empty
	Email       string // or empty
	TimeZone    string
}

// PutFan creates or updates a fan.
func (s *Store) PutFan(ctx context.Context, f Fan) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO fans (id, display_name, phone, email, time_zone)
		VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5)
		ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, phone = excluded.phone,
			email = excluded.email, time_zone = excluded.time_zone, updated_at = now()`,
		f.ID, f.DisplayName, f.Phone, f.Email, f.TimeZone)
	if err != nil {
		return fmt.Errorf("saving fan: %w", err)
	}
	return nil
}

// LinkAccount links a partner account to a fan, with the fan's consent.
func (s *Store) LinkAccount(ctx context.Context, partnerID, partnerUserID string, fan uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO linked_accounts (partner_id, partner_user_id, fan_id) VALUES ($1, $2, $3)
		ON CONFLICT (partner_id, partner_user_id) DO UPDATE SET fan_id = excluded.fan_id, updated_at = now()`,
		partnerID, partnerUserID, fan)
	if err != nil {
		return fmt.Errorf("linking account: %w", err)
	}
	return nil
}

// FanByAccount returns the fan linked to a partner account.
func (s *Store) FanByAccount(ctx context.Context, partnerID, partnerUserID string) (uuid.UUID, bool, error) {
	var fan uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT fan_id FROM linked_accounts WHERE partner_id = $1 AND partner_user_id = $2`,
		partnerID, partnerUserID).Scan(&fan)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("looking up account: %w", err)
	}
	return fan, true, nil
}

// BulkFan is one fan and the partner account linked to it, for bulk loads.
type BulkFan struct {
	Fan
	PartnerUserID string
}

// BulkLoadFans inserts many new fans and their linked accounts with COPY, for
// benchmarks and imports. The fans must not exist yet.
func (s *Store) BulkLoadFans(ctx context.Context, partnerID string, fans []BulkFan) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"fans"}, []string{"id", "display_name", "phone", "email", "time_zone"},
			pgx.CopyFromSlice(len(fans), func(i int) ([]any, error) {
				f := fans[i]
				return []any{f.ID, f.DisplayName, nullable(f.Phone), nullable(f.Email), f.TimeZone}, nil
			}))
		if err != nil {
			return fmt.Errorf("copying fans: %w", err)
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"linked_accounts"}, []string{"partner_id", "partner_user_id", "fan_id"},
			pgx.CopyFromSlice(len(fans), func(i int) ([]any, error) {
				return []any{partnerID, fans[i].PartnerUserID, fans[i].ID}, nil
			}))
		if err != nil {
			return fmt.Errorf("copying linked accounts: %w", err)
		}
		return nil
	})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

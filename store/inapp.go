package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
)

// InAppConsent is a fan's opt-out of (or back into) marketing on one channel,
// or all of them, asked for inside a partner's app (F18 compliance).
type InAppConsent struct {
	PartnerID, PartnerUserID string
	// Channels are the channels the change covers: sms, email, push.
	Channels []offers.Channel
	Change   ConsentChange
	// Wording is what the fan saw when they chose, as the partner shows it.
	Wording string
	// Actor is who passed the request on, e.g. "partner:streamly".
	Actor string
	At    time.Time
}

// SetInAppConsent applies an in-app opt-out or opt-in in one transaction:
// sms and email suppress (or lift the fan's own suppression of) the fan's
// number and address, push turns the fan's pushes off (or on), and every
// channel gets a consent ledger entry. The next delivery sees it
// (Delivery.Suppressed). It returns ErrNotFound when no fan is linked to the
// account.
func (s *Store) SetInAppConsent(ctx context.Context, c InAppConsent) error {
	source := "partner:" + c.PartnerID + ":in-app"
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var fan uuid.UUID
		var phone, email *string
		err := tx.QueryRow(ctx, `SELECT f.id, f.phone, f.email FROM linked_accounts l JOIN fans f ON f.id = l.fan_id
			WHERE l.partner_id = $1 AND l.partner_user_id = $2 FOR NO KEY UPDATE OF f`, c.PartnerID, c.PartnerUserID).Scan(&fan, &phone, &email)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("account %s/%s: %w", c.PartnerID, c.PartnerUserID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("finding fan for in-app consent: %w", err)
		}
		for _, ch := range c.Channels {
			if err := inAppChannel(ctx, tx, fan, c, ch, source, phone, email); err != nil {
				return err
			}
		}
		return nil
	})
}

func inAppChannel(ctx context.Context, tx pgx.Tx, fan uuid.UUID, c InAppConsent, ch offers.Channel, source string, phone, email *string) error {
	var address *string
	switch ch {
	case offers.ChannelSMS:
		address = phone
	case offers.ChannelEmail:
		address = email
	case offers.ChannelPush:
		if _, err := tx.Exec(ctx, `UPDATE fans SET push_enabled = $2, updated_at = now() WHERE id = $1`, fan, c.Change == OptIn); err != nil {
			return fmt.Errorf("changing push consent: %w", err)
		}
	default:
		return fmt.Errorf("in-app consent: unknown channel %q", ch)
	}
	if address != nil && *address != "" {
		cc := ChannelConsent{Channel: ch, Address: *address, Reason: "opt_out", Source: source, Wording: c.Wording, Actor: c.Actor, At: c.At}
		if c.Change == OptIn {
			if _, err := tx.Exec(ctx, `UPDATE suppressions SET lifted_at = $3, lift_source = $4
				WHERE channel = $1 AND address = $2 AND lifted_at IS NULL AND reason = ANY ($5)`,
				string(ch), normalAddress(ch, *address), c.At, source, consentReasons); err != nil {
				return fmt.Errorf("lifting suppression: %w", err)
			}
		} else if err := suppress(ctx, tx, ch, *address, cc.Reason, source, c.At); err != nil {
			return err
		}
	}
	// One entry for this fan and partner account, whether or not the channel
	// has a contact point: the choice is kept either way.
	var addr any
	if address != nil && *address != "" {
		addr = normalAddress(ch, *address)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO consent_ledger (fan_id, partner_id, partner_user_id, action, wording, actor, channel, address, source, recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		fan, c.PartnerID, c.PartnerUserID, string(c.Change), c.Wording, c.Actor, string(ch), addr, source, c.At); err != nil {
		return fmt.Errorf("writing consent ledger: %w", err)
	}
	return nil
}

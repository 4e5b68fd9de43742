package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
)

// OfferContent is what an offer's messages are made of besides its Delivery.
type OfferContent struct {
	// Templates are those of the rule version that issued the offer (the
	// rule's current body if that version was not kept); nil: the built-in
	// messages.
	Templates *offers.Templates
	// ShowStartsAt is when the offer's show starts.
	ShowStartsAt time.Time
}

// OfferContent returns the message templates and show start of an offer.
// An offer keeps the messages of the rule version that issued it, as it
// keeps that version's perks: a later edit of the rule changes new offers
// only.
func (s *Store) OfferContent(ctx context.Context, offerID uuid.UUID) (OfferContent, error) {
	return scanOfferContent(s.pool.QueryRow(ctx, `SELECT `+offerContentColumns+` WHERE o.id = $1`, offerID), offerID, nil)
}

// offerContentColumns is the select list and FROM clause of offer content,
// for one offer or many.
const offerContentColumns = `COALESCE(v.body, r.body), sh.starts_at
	FROM offers o
	JOIN rules r ON r.id = o.rule_id
	JOIN shows sh ON sh.id = o.show_id
	LEFT JOIN rule_versions v ON v.rule_id = o.rule_id AND v.version = o.rule_version`

// scanOfferContent scans offer content, after the offer id when id is set.
func scanOfferContent(row pgx.Row, offerID uuid.UUID, id *uuid.UUID) (OfferContent, error) {
	var c OfferContent
	var body []byte
	dest := []any{&body, &c.ShowStartsAt}
	if id != nil {
		dest = append([]any{id}, dest...)
	}
	err := row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("offer %s: %w", offerID, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("reading offer %s's templates: %w", offerID, err)
	}
	if id != nil {
		offerID = *id
	}
	var rule struct {
		Templates *offers.Templates `json:"templates"`
	}
	if err := json.Unmarshal(body, &rule); err != nil {
		return c, fmt.Errorf("decoding offer %s's rule: %w", offerID, err)
	}
	c.Templates = rule.Templates
	return c, nil
}

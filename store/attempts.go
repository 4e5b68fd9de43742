package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
)

// Attempt outcomes that leave a send unresolved: the provider may hold the
// message. A delivery retry asks the provider before sending again.
const (
	// AttemptSending is written before the provider is called: a process
	// that dies mid-call leaves it behind.
	AttemptSending = "sending"
	// AttemptUnknown is a timeout or a server error after the request left.
	AttemptUnknown = "unknown"
	// AttemptNotFound closes an unresolved attempt the provider has no trace of.
	AttemptNotFound = "not_found"
)

// DeliveryContext is what a delivery needs besides the offer itself.
type DeliveryContext struct {
	// TimeZone is the fan's IANA zone, for the hours SMS may be sent in.
	TimeZone string
	// Open maps each channel whose last attempt is unresolved to when the
	// first of its unresolved attempts began.
	Open map[offers.Channel]time.Time
}

// DeliveryContext returns the fan's zone and the offer's unresolved attempts.
func (s *Store) DeliveryContext(ctx context.Context, offerID uuid.UUID) (DeliveryContext, error) {
	return scanDeliveryContext(s.pool.QueryRow(ctx, `SELECT `+deliveryContextColumns+` WHERE o.id = $1 GROUP BY f.time_zone`, offerID), nil)
}

// deliveryContextColumns is the select list and FROM clause of a delivery
// context, for one offer or many.
const deliveryContextColumns = `f.time_zone, COALESCE(array_agg(a.channel) FILTER (WHERE a.channel IS NOT NULL), '{}'),
		COALESCE(array_agg(a.since) FILTER (WHERE a.channel IS NOT NULL), '{}')
	FROM offers o JOIN fans f ON f.id = o.fan_id
	LEFT JOIN LATERAL (
		SELECT channel, min(attempted_at) FILTER (WHERE outcome IN ('sending', 'unknown')) AS since
		FROM delivery_attempts WHERE offer_id = o.id
		GROUP BY channel
		HAVING (array_agg(outcome ORDER BY id DESC))[1] IN ('sending', 'unknown')) a ON true`

// scanDeliveryContext scans a delivery context, after the offer id when id is set.
func scanDeliveryContext(row pgx.Row, id *uuid.UUID) (DeliveryContext, error) {
	dc := DeliveryContext{TimeZone: "UTC", Open: map[offers.Channel]time.Time{}}
	var channels []string
	var since []time.Time
	dest := []any{&dc.TimeZone, &channels, &since}
	if id != nil {
		dest = append([]any{id}, dest...)
	}
	err := row.Scan(dest...)
	if err != nil && err != pgx.ErrNoRows {
		return dc, fmt.Errorf("reading delivery context: %w", err)
	}
	for i, ch := range channels {
		if ch != "" && i < len(since) {
			dc.Open[offers.Channel(ch)] = since[i]
		}
	}
	return dc, nil
}

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

// Offer states.
const (
	OfferIssued    = "issued"
	OfferDelivered = "delivered"
	OfferFailed    = "failed"
	OfferExpired   = "expired"
)

// Delivery is everything a delivery worker needs to send one offer.
type Delivery struct {
	OfferID       uuid.UUID
	FanID         uuid.UUID
	Status        string
	Tier          int
	Perks         []string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	Channels      []offers.Channel
	FanName       string
	Phone         string
	Email         string
	ShowName      string
	PerformerName string
	// Refused lists the channels that refused this offer for good.
	Refused []offers.Channel
	// PresaleCode is the code from the show's pool, if it has one.
	PresaleCode string
	// Suppressed lists the channels whose contact point (the fan's phone for
	// sms, email address for email) is suppressed now: opted out, bounced or
	// refused for good (F18), and push when the fan turned pushes off (in
	// the partner's app, or at registration). Nothing may be sent over them.
	Suppressed []offers.Channel
}

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Delivery loads the delivery view of an offer.
func (s *Store) Delivery(ctx context.Context, offerID uuid.UUID) (Delivery, error) {
	return scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` WHERE o.id = $1`, offerID), offerID)
}

// deliveryColumns is the select list and FROM clause of a Delivery, for one
// offer or many; the offer id comes first.
const deliveryColumns = `o.id, o.fan_id, o.status, o.tier, o.perks, o.issued_at, o.expires_at, r.channels,
		f.display_name, f.phone, f.email, sh.name, p.name, COALESCE(o.presale_code, ''),
		ARRAY(SELECT DISTINCT channel FROM delivery_attempts a WHERE a.offer_id = o.id AND a.outcome = 'failed'),
		ARRAY(SELECT s.channel FROM suppressions s WHERE s.lifted_at IS NULL
			AND (s.channel = 'sms' AND s.address = f.phone OR s.channel = 'email' AND s.address = lower(f.email)))
			|| CASE WHEN f.push_enabled THEN '{}'::text[] ELSE '{push}'::text[] END
	FROM offers o
	JOIN rules r ON r.id = o.rule_id
	JOIN fans f ON f.id = o.fan_id
	JOIN shows sh ON sh.id = o.show_id
	JOIN performers p ON p.id = o.performer_id`

func scanDelivery(row pgx.Row, offerID uuid.UUID) (Delivery, error) {
	var d Delivery
	var channels, refused, suppressed []string
	var phone, email *string
	err := row.Scan(&d.OfferID, &d.FanID, &d.Status, &d.Tier, &d.Perks, &d.IssuedAt, &d.ExpiresAt,
		&channels, &d.FanName, &phone, &email, &d.ShowName, &d.PerformerName, &d.PresaleCode, &refused, &suppressed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, fmt.Errorf("offer %s: %w", offerID, ErrNotFound)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("loading offer %s: %w", offerID, err)
	}
	for _, c := range channels {
		d.Channels = append(d.Channels, offers.Channel(c))
	}
	for _, c := range refused {
		d.Refused = append(d.Refused, offers.Channel(c))
	}
	for _, c := range suppressed {
		d.Suppressed = append(d.Suppressed, offers.Channel(c))
	}
	if phone != nil {
		d.Phone = *phone
	}
	if email != nil {
		d.Email = *email
	}
	return d, nil
}

// Deliverable is everything a delivery reads before it sends: the offer and
// its fan, the delivery context and the message content.
type Deliverable struct {
	Delivery
	Context DeliveryContext
	Content OfferContent
}

// Deliverable reads an offer's Delivery, DeliveryContext and OfferContent in
// one round trip; ErrNotFound when the offer does not exist.
func (s *Store) Deliverable(ctx context.Context, offerID uuid.UUID) (Deliverable, error) {
	all, err := s.Deliverables(ctx, []uuid.UUID{offerID})
	if err != nil {
		return Deliverable{}, err
	}
	d, ok := all[offerID]
	if !ok {
		return Deliverable{}, fmt.Errorf("offer %s: %w", offerID, ErrNotFound)
	}
	return d, nil
}

// Deliverables reads the Deliverable of each offer that exists, in one round
// trip: a pipelined batch of three queries, which Postgres runs in one
// implicit transaction, so the parts of each agree with each other.
func (s *Store) Deliverables(ctx context.Context, offerIDs []uuid.UUID) (map[uuid.UUID]Deliverable, error) {
	out := make(map[uuid.UUID]Deliverable, len(offerIDs))
	contexts := make(map[uuid.UUID]DeliveryContext, len(offerIDs))
	contents := make(map[uuid.UUID]OfferContent, len(offerIDs))
	b := &pgx.Batch{}
	b.Queue(`SELECT `+deliveryColumns+` WHERE o.id = ANY($1)`, offerIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			d, err := scanDelivery(rows, uuid.Nil)
			if err != nil {
				return err
			}
			out[d.OfferID] = Deliverable{Delivery: d}
		}
		return rows.Err()
	})
	b.Queue(`SELECT o.id, `+deliveryContextColumns+` WHERE o.id = ANY($1) GROUP BY o.id, f.time_zone`, offerIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			dc, err := scanDeliveryContext(rows, &id)
			if err != nil {
				return err
			}
			contexts[id] = dc
		}
		return rows.Err()
	})
	b.Queue(`SELECT o.id, `+offerContentColumns+` WHERE o.id = ANY($1)`, offerIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			c, err := scanOfferContent(rows, uuid.Nil, &id)
			if err != nil {
				return err
			}
			contents[id] = c
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("loading %d offers for delivery: %w", len(offerIDs), err)
	}
	for id, d := range out {
		dc, ok := contexts[id]
		if !ok { // as scanDeliveryContext says no rows
			dc = DeliveryContext{TimeZone: "UTC", Open: map[offers.Channel]time.Time{}}
		}
		d.Context = dc
		d.Content = contents[id]
		out[id] = d
	}
	return out, nil
}

// Attempt is one try at delivering an offer over one channel.
type Attempt struct {
	OfferID    uuid.UUID
	Channel    offers.Channel
	Outcome    string // "sent", "failed", "skipped"
	ProviderID string
	Detail     string
}

// RecordAttempt logs a delivery attempt.
func (s *Store) RecordAttempt(ctx context.Context, a Attempt) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO delivery_attempts (offer_id, channel, outcome, provider_id, detail)
		VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''))`, a.OfferID, string(a.Channel), a.Outcome, a.ProviderID, a.Detail)
	if err != nil {
		return fmt.Errorf("recording delivery attempt: %w", err)
	}
	return nil
}

// MarkDelivered records a successful delivery, with its attempt, in one transaction.
// It reports false when the offer was no longer waiting for delivery.
func (s *Store) MarkDelivered(ctx context.Context, a Attempt, at time.Time) (bool, error) {
	// One statement is one transaction: the data-modifying CTEs both run,
	// atomically, in one round trip instead of the four of BEGIN, two
	// statements and COMMIT (a delivery's share of the database was mostly
	// round trips).
	var moved int
	err := s.pool.QueryRow(ctx, `WITH moved AS (
			UPDATE offers SET status = 'delivered', channel = $2, provider_id = NULLIF($3, ''), delivered_at = $4
			WHERE id = $1 AND status = 'issued' RETURNING 1
		), attempt AS (
			INSERT INTO delivery_attempts (offer_id, channel, outcome, provider_id, detail)
			VALUES ($1, $2, 'sent', NULLIF($3, ''), NULLIF($5, ''))
		)
		SELECT count(*) FROM moved`, a.OfferID, string(a.Channel), a.ProviderID, at, a.Detail).Scan(&moved)
	if err != nil {
		return false, fmt.Errorf("marking offer delivered: %w", err)
	}
	return moved == 1, nil
}

// RecordAttempts logs delivery attempts of several offers in one statement:
// workers' bookkeeping grouped into one round trip and one commit.
func (s *Store) RecordAttempts(ctx context.Context, as []Attempt) error {
	if len(as) == 0 {
		return nil
	}
	ids, channels, outcomes, providers, details := attemptColumns(as)
	_, err := s.pool.Exec(ctx, `INSERT INTO delivery_attempts (offer_id, channel, outcome, provider_id, detail)
		SELECT offer_id, channel, outcome, NULLIF(provider_id, ''), NULLIF(detail, '')
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(offer_id, channel, outcome, provider_id, detail)`,
		ids, channels, outcomes, providers, details)
	if err != nil {
		return fmt.Errorf("recording %d delivery attempts: %w", len(as), err)
	}
	return nil
}

// Delivered is an offer a provider accepted, and when.
type Delivered struct {
	Attempt
	At time.Time
}

// MarkDeliveredMany records several successful deliveries, with their
// attempts, in one statement (one transaction), as MarkDelivered does each.
func (s *Store) MarkDeliveredMany(ctx context.Context, ds []Delivered) error {
	if len(ds) == 0 {
		return nil
	}
	as := make([]Attempt, len(ds))
	at := make([]time.Time, len(ds))
	for i, d := range ds {
		as[i], at[i] = d.Attempt, d.At
	}
	ids, channels, _, providers, details := attemptColumns(as)
	_, err := s.pool.Exec(ctx, `WITH input AS (
			SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS t(offer_id, channel, provider_id, detail, at)
		), moved AS (
			UPDATE offers o SET status = 'delivered', channel = i.channel, provider_id = NULLIF(i.provider_id, ''), delivered_at = i.at
			FROM input i WHERE o.id = i.offer_id AND o.status = 'issued'
		)
		INSERT INTO delivery_attempts (offer_id, channel, outcome, provider_id, detail)
		SELECT offer_id, channel, 'sent', NULLIF(provider_id, ''), NULLIF(detail, '') FROM input`,
		ids, channels, providers, details, at)
	if err != nil {
		return fmt.Errorf("marking %d offers delivered: %w", len(ds), err)
	}
	return nil
}

func attemptColumns(as []Attempt) (ids []uuid.UUID, channels, outcomes, providers, details []string) {
	ids = make([]uuid.UUID, len(as))
	channels, outcomes = make([]string, len(as)), make([]string, len(as))
	providers, details = make([]string, len(as)), make([]string, len(as))
	for i, a := range as {
		ids[i], channels[i], outcomes[i], providers[i], details[i] = a.OfferID, string(a.Channel), a.Outcome, a.ProviderID, a.Detail
	}
	return ids, channels, outcomes, providers, details
}

// FinishOffer moves an offer still waiting for delivery to a final state with a reason.
func (s *Store) FinishOffer(ctx context.Context, offerID uuid.UUID, status, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE offers SET status = $2, status_reason = $3 WHERE id = $1 AND status = 'issued'`,
		offerID, status, reason)
	if err != nil {
		return fmt.Errorf("finishing offer: %w", err)
	}
	return nil
}

// Abandoned is an offer whose delivery was given up: its job was discarded.
type Abandoned struct {
	OfferID uuid.UUID
	// Round is the redelivery round the job belonged to: a later round's
	// delivery, still under way, is left alone.
	Round  int
	Reason string
}

// AbandonOffers marks failed, with their reasons, the offers in as that are
// still issued in the same round, and reports how many it marked.
func (s *Store) AbandonOffers(ctx context.Context, as []Abandoned) (int64, error) {
	if len(as) == 0 {
		return 0, nil
	}
	ids := make([]uuid.UUID, len(as))
	rounds := make([]int32, len(as))
	reasons := make([]string, len(as))
	for i, a := range as {
		ids[i], rounds[i], reasons[i] = a.OfferID, int32(a.Round), a.Reason
	}
	tag, err := s.pool.Exec(ctx, `UPDATE offers o SET status = 'failed', status_reason = a.reason
		FROM unnest($1::uuid[], $2::int[], $3::text[]) AS a(id, round, reason)
		WHERE o.id = a.id AND o.status = 'issued' AND o.redeliveries = a.round`, ids, rounds, reasons)
	if err != nil {
		return 0, fmt.Errorf("abandoning offers: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ExpireOffers marks every open offer whose termination time has passed as expired.
func (s *Store) ExpireOffers(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE offers SET status = 'expired',
			status_reason = COALESCE(status_reason, 'termination time passed')
		WHERE status IN ('issued', 'delivered') AND expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("expiring offers: %w", err)
	}
	return tag.RowsAffected(), nil
}

// OfferSummary counts offers by state and delivery channel.
type OfferSummary struct {
	ByStatus  map[string]int64
	ByChannel map[string]int64
	// ByStatusChannel counts by both; the channel is "" for offers not delivered over one yet.
	ByStatusChannel map[[2]string]int64
}

// SummarizeOffers counts offers by status and by delivery channel.
func (s *Store) SummarizeOffers(ctx context.Context) (OfferSummary, error) {
	sum := OfferSummary{ByStatus: map[string]int64{}, ByChannel: map[string]int64{}, ByStatusChannel: map[[2]string]int64{}}
	rows, err := s.pool.Query(ctx, `SELECT status, COALESCE(channel, ''), count(*) FROM offers GROUP BY 1, 2`)
	if err != nil {
		return sum, fmt.Errorf("counting offers: %w", err)
	}
	var status, channel string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&status, &channel, &n}, func() error {
		sum.ByStatus[status] += n
		sum.ByStatusChannel[[2]string{status, channel}] += n
		if channel != "" {
			sum.ByChannel[channel] += n
		}
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("counting offers: %w", err)
	}
	return sum, nil
}

// StoredOffer is an offer as stored, with its delivery state.
type StoredOffer struct {
	offers.Offer
	Status    string
	Channel   string
	Reason    string
	Partition int
}

// Offers returns every offer, oldest first (for tests, reports and the demo).
func (s *Store) Offers(ctx context.Context) ([]StoredOffer, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, fan_id, rule_id, rule_version, tier, performer_id, show_id, perks,
			index_value, event_id, issued_at, expires_at, status, COALESCE(channel, ''), COALESCE(status_reason, ''), partition
		FROM offers ORDER BY issued_at, id`)
	if err != nil {
		return nil, fmt.Errorf("reading offers: %w", err)
	}
	var out []StoredOffer
	var o StoredOffer
	_, err = pgx.ForEachRow(rows, []any{&o.ID, &o.FanID, &o.RuleID, &o.RuleVersion, &o.Tier, &o.PerformerID, &o.ShowID,
		&o.Perks, &o.IndexValue, &o.EventID, &o.IssuedAt, &o.ExpiresAt, &o.Status, &o.Channel, &o.Reason, &o.Partition}, func() error {
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading offers: %w", err)
	}
	return out, nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pushChannel is the NOTIFY channel that announces appended pushes.
const pushChannel = "crescendo_push"

// PushMessage is one in-app push as stored: seq is its SSE id.
type PushMessage struct {
	Seq       int64
	FanID     uuid.UUID
	OfferID   uuid.UUID // uuid.Nil when the push is about no offer
	Event     string
	Data      []byte // JSON
	CreatedAt time.Time
}

// PushAppend is a push to append to a fan's outbox.
type PushAppend struct {
	FanID   uuid.UUID
	OfferID uuid.UUID // uuid.Nil: none; otherwise one push per (offer, event)
	Event   string
	Data    []byte // JSON
}

// PushAppended is what AppendPush did.
type PushAppended struct {
	// Seq is the push's sequence number; 0 when nothing was appended.
	Seq int64
	// Stream reports whether a stream was open for the fan on some replica,
	// Webhooks how many webhook deliveries were queued.
	Stream   bool
	Webhooks int
	// Repeat reports that the offer's push was appended before: Seq is that push's.
	Repeat bool
}

// PushNotice is the announcement of an appended push.
type PushNotice struct {
	FanID    uuid.UUID
	Seq      int64
	Webhooks int
}

// AppendPush appends a push to the fan's outbox, queues its POST to every
// webhook of a partner the fan has an account at, and announces it to every
// replica (NOTIFY), all in one transaction. It appends nothing, and returns a
// zero Seq, when the fan turned pushes off (push_enabled), or when no replica
// holds a stream open for the fan and no webhook would take it. A push for an offer is appended once: a repeat returns the
// first one's seq. A fan that does not exist (erased) is ErrNotFound.
func (s *Store) AppendPush(ctx context.Context, p PushAppend) (PushAppended, error) {
	var res PushAppended
	offer := nullableUUID(p.OfferID)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = PushAppended{}
		// The lock serializes a fan's appends, so its pushes commit in seq order
		// (see the migration). NO KEY UPDATE leaves foreign key checks alone.
		var enabled bool
		err := tx.QueryRow(ctx, `SELECT push_enabled FROM fans WHERE id = $1 FOR NO KEY UPDATE`, p.FanID).Scan(&enabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("fan %s: %w", p.FanID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("locking fan: %w", err)
		}
		if !enabled {
			return nil // the fan turned pushes off
		}
		var repeat *int64
		var hooks bool
		if err := tx.QueryRow(ctx, `SELECT
				(SELECT seq FROM push_messages WHERE offer_id = $2 AND event = $3),
				EXISTS (SELECT 1 FROM push_presence WHERE fan_id = $1 AND expires_at > now()),
				EXISTS (SELECT 1 FROM linked_accounts l JOIN partner_webhooks w ON w.partner_id = l.partner_id WHERE l.fan_id = $1)`,
			p.FanID, offer, p.Event).Scan(&repeat, &res.Stream, &hooks); err != nil {
			return fmt.Errorf("looking up push targets: %w", err)
		}
		if repeat != nil {
			res.Seq, res.Repeat = *repeat, true
			return nil
		}
		if !res.Stream && !hooks {
			return nil
		}
		if err := tx.QueryRow(ctx, `WITH m AS (
				INSERT INTO push_messages (fan_id, offer_id, event, data) VALUES ($1, $2, $3, $4) RETURNING seq, fan_id
			), d AS (
				INSERT INTO push_webhook_deliveries (seq, partner_id, partner_user_id)
				SELECT m.seq, l.partner_id, l.partner_user_id
				FROM m, linked_accounts l JOIN partner_webhooks w ON w.partner_id = l.partner_id
				WHERE l.fan_id = $1
				RETURNING 1
			), n AS (SELECT count(*) AS hooks FROM d)
			SELECT m.seq, n.hooks, pg_notify($5, m.fan_id::text || ' ' || m.seq || ' ' || n.hooks) FROM m, n`,
			p.FanID, offer, p.Event, p.Data, pushChannel).Scan(&res.Seq, &res.Webhooks, nil); err != nil {
			return fmt.Errorf("appending push: %w", err)
		}
		return nil
	})
	if err != nil {
		return PushAppended{}, err
	}
	return res, nil
}

// PushSeqForOffer returns the seq of the offer's push of the given event, if
// one was appended.
func (s *Store) PushSeqForOffer(ctx context.Context, offerID uuid.UUID, event string) (int64, bool, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM push_messages WHERE offer_id = $1 AND event = $2`, offerID, event).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking up offer push: %w", err)
	}
	return seq, true, nil
}

// PushesAfter returns up to limit of the fan's pushes with a seq above after, in seq order.
func (s *Store) PushesAfter(ctx context.Context, fan uuid.UUID, after int64, limit int) ([]PushMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, fan_id, COALESCE(offer_id, '00000000-0000-0000-0000-000000000000'), event, data, created_at
		FROM push_messages WHERE fan_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, fan, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading pushes: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PushMessage])
	if err != nil {
		return nil, fmt.Errorf("reading pushes: %w", err)
	}
	return out, nil
}

// LastPushSeq returns the seq of the fan's latest push, 0 if it has none.
func (s *Store) LastPushSeq(ctx context.Context, fan uuid.UUID) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM push_messages WHERE fan_id = $1`, fan).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading last push: %w", err)
	}
	return seq, nil
}

// DeletePushesBefore deletes pushes appended before t, with their webhook
// deliveries (data retention); a stream resuming from before then gets what is left.
func (s *Store) DeletePushesBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM push_messages WHERE created_at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("deleting old pushes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ListenPush announces every push appended from now on (see AppendPush) to
// onNotice, on a connection of its own. It calls onListen once it listens,
// so the caller can catch up on what it missed before; it returns only with
// an error (or when ctx ends): the caller reconnects.
func (s *Store) ListenPush(ctx context.Context, onListen func(), onNotice func(PushNotice)) error {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	// The connection carries a LISTEN: it must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pushChannel); err != nil {
		return fmt.Errorf("listening for pushes: %w", err)
	}
	onListen()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("waiting for pushes: %w", err)
		}
		if notice, ok := parsePushNotice(n); ok {
			onNotice(notice)
		} else {
			s.logger.WarnContext(ctx, "ignoring a malformed push notice")
		}
	}
}

func parsePushNotice(n *pgconn.Notification) (PushNotice, bool) {
	f := strings.Fields(n.Payload)
	if len(f) != 3 {
		return PushNotice{}, false
	}
	fan, err1 := uuid.Parse(f[0])
	seq, err2 := strconv.ParseInt(f[1], 10, 64)
	hooks, err3 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return PushNotice{}, false
	}
	return PushNotice{FanID: fan, Seq: seq, Webhooks: hooks}, true
}

// PushReach says how an in-app push could reach a fan now.
type PushReach struct {
	// Stream: some replica holds a stream open for the fan.
	Stream bool
	// Webhook: a partner the fan has an account at registered a webhook.
	Webhook bool
}

// PushReach reports whether a stream is open for the fan on any replica and
// whether a webhook would take a push for the fan; neither when the fan
// turned pushes off or does not exist.
func (s *Store) PushReach(ctx context.Context, fan uuid.UUID) (PushReach, error) {
	var r PushReach
	err := s.pool.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM push_presence WHERE fan_id = $1 AND expires_at > now()),
			EXISTS (SELECT 1 FROM linked_accounts l JOIN partner_webhooks w ON w.partner_id = l.partner_id WHERE l.fan_id = $1)
		FROM fans WHERE id = $1 AND push_enabled`, fan).Scan(&r.Stream, &r.Webhook)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("reading push reach: %w", err)
	}
	return r, nil
}

// SetPushPresence records that replica holds a stream open for the fan, until
// ttl from now. It reports false, recording nothing, when the fan does not exist.
func (s *Store) SetPushPresence(ctx context.Context, replica, fan uuid.UUID, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO push_presence (fan_id, replica_id, expires_at)
		SELECT id, $2, now() + $3 * interval '1 microsecond' FROM fans WHERE id = $1
		ON CONFLICT (fan_id, replica_id) DO UPDATE SET expires_at = excluded.expires_at`, fan, replica, ttl.Microseconds())
	if err != nil {
		return false, fmt.Errorf("recording push presence: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ClearPushPresence records that replica holds no stream for the fan any more.
func (s *Store) ClearPushPresence(ctx context.Context, replica, fan uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM push_presence WHERE fan_id = $1 AND replica_id = $2`, fan, replica); err != nil {
		return fmt.Errorf("clearing push presence: %w", err)
	}
	return nil
}

// RenewPushPresence extends replica's presence rows for fans to ttl from now,
// deletes every replica's expired rows, and returns the fans that had no row
// to extend (erased, or expired and deleted).
func (s *Store) RenewPushPresence(ctx context.Context, replica uuid.UUID, fans []uuid.UUID, ttl time.Duration) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `UPDATE push_presence SET expires_at = now() + $3 * interval '1 microsecond'
		WHERE replica_id = $1 AND fan_id = ANY($2) RETURNING fan_id`, replica, fans, ttl.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("renewing push presence: %w", err)
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("renewing push presence: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM push_presence WHERE expires_at < now()`); err != nil {
		return nil, fmt.Errorf("deleting expired push presence: %w", err)
	}
	if len(renewed) == len(fans) {
		return nil, nil
	}
	have := make(map[uuid.UUID]bool, len(renewed))
	for _, f := range renewed {
		have[f] = true
	}
	var missing []uuid.UUID
	for _, f := range fans {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	return missing, nil
}

// DropPushPresence deletes every presence row of replica (it is stopping).
func (s *Store) DropPushPresence(ctx context.Context, replica uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM push_presence WHERE replica_id = $1`, replica); err != nil {
		return fmt.Errorf("dropping push presence: %w", err)
	}
	return nil
}

// PartnerWebhook is a partner backend's webhook registration.
type PartnerWebhook struct {
	PartnerID string
	URL       string
	// Secret is the signing secret as sealed by the caller; the store never opens it.
	Secret    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PutPartnerWebhook registers the partner's webhook, or replaces its URL and
// secret. It reports whether it was created.
func (s *Store) PutPartnerWebhook(ctx context.Context, w PartnerWebhook) (PartnerWebhook, bool, error) {
	var created bool
	err := s.pool.QueryRow(ctx, `INSERT INTO partner_webhooks (partner_id, url, secret) VALUES ($1, $2, $3)
		ON CONFLICT (partner_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = now()
		RETURNING created_at, updated_at, xmax = 0`, w.PartnerID, w.URL, w.Secret).Scan(&w.CreatedAt, &w.UpdatedAt, &created)
	if err != nil {
		return PartnerWebhook{}, false, fmt.Errorf("saving partner webhook: %w", err)
	}
	return w, created, nil
}

// PartnerWebhook returns the partner's webhook registration, or ErrNotFound.
func (s *Store) PartnerWebhook(ctx context.Context, partnerID string) (PartnerWebhook, error) {
	w := PartnerWebhook{PartnerID: partnerID}
	err := s.pool.QueryRow(ctx, `SELECT url, secret, created_at, updated_at FROM partner_webhooks WHERE partner_id = $1`,
		partnerID).Scan(&w.URL, &w.Secret, &w.CreatedAt, &w.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, fmt.Errorf("webhook of partner %s: %w", partnerID, ErrNotFound)
	}
	if err != nil {
		return w, fmt.Errorf("reading partner webhook: %w", err)
	}
	return w, nil
}

// DeletePartnerWebhook removes the partner's webhook (ErrNotFound if it has
// none); its pending deliveries fail with that reason in the same transaction.
func (s *Store) DeletePartnerWebhook(ctx context.Context, partnerID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM partner_webhooks WHERE partner_id = $1`, partnerID)
		if err != nil {
			return fmt.Errorf("deleting partner webhook: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("webhook of partner %s: %w", partnerID, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE push_webhook_deliveries SET state = 'failed', failed_at = now(),
				last_error = 'the partner removed its webhook'
			WHERE partner_id = $1 AND state = 'pending'`, partnerID); err != nil {
			return fmt.Errorf("failing pending webhook deliveries: %w", err)
		}
		return nil
	})
}

// PushWebhookDelivery is a claimed attempt to POST one push to one partner
// account's webhook, with everything the attempt needs.
type PushWebhookDelivery struct {
	ID            int64
	Attempt       int // 1 for the first
	PartnerID     string
	PartnerUserID string
	// URL and Secret are the partner's webhook now; empty when it was removed.
	URL    string
	Secret []byte
	Push   PushMessage
	// Expired: the push's offer ended; Unlinked: the account is no longer linked to the fan.
	Expired, Unlinked bool
}

// ClaimPushWebhookDeliveries claims up to limit deliveries that are due, counting
// an attempt for each and putting its next attempt lease from now, so that
// another replica takes it over only if this one dies.
func (s *Store) ClaimPushWebhookDeliveries(ctx context.Context, limit int, lease time.Duration) ([]PushWebhookDelivery, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM push_webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
		), claimed AS (
			UPDATE push_webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + $2 * interval '1 microsecond'
			FROM due WHERE d.id = due.id
			RETURNING d.id, d.attempts, d.seq, d.partner_id, d.partner_user_id
		)
		SELECT c.id, c.attempts, c.partner_id, c.partner_user_id, COALESCE(w.url, ''), COALESCE(w.secret, ''::bytea),
			m.seq, m.fan_id, COALESCE(m.offer_id, '00000000-0000-0000-0000-000000000000'), m.event, m.data, m.created_at,
			COALESCE(o.expires_at <= now() OR o.status IN ('expired', 'failed'), false),
			NOT EXISTS (SELECT 1 FROM linked_accounts l
				WHERE l.partner_id = c.partner_id AND l.partner_user_id = c.partner_user_id AND l.fan_id = m.fan_id)
		FROM claimed c
		JOIN push_messages m ON m.seq = c.seq
		LEFT JOIN partner_webhooks w ON w.partner_id = c.partner_id
		LEFT JOIN offers o ON o.id = m.offer_id
		ORDER BY c.id`, limit, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("claiming webhook deliveries: %w", err)
	}
	var out []PushWebhookDelivery
	var d PushWebhookDelivery
	_, err = pgx.ForEachRow(rows, []any{&d.ID, &d.Attempt, &d.PartnerID, &d.PartnerUserID, &d.URL, &d.Secret,
		&d.Push.Seq, &d.Push.FanID, &d.Push.OfferID, &d.Push.Event, &d.Push.Data, &d.Push.CreatedAt, &d.Expired, &d.Unlinked}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claiming webhook deliveries: %w", err)
	}
	return out, nil
}

// Push webhook delivery states.
const (
	PushWebhookPending   = "pending"
	PushWebhookDelivered = "delivered"
	PushWebhookFailed    = "failed"
)

// PushWebhookOutcome is how a claimed attempt ended.
type PushWebhookOutcome struct {
	// State is PushWebhookDelivered, PushWebhookFailed (for good), or
	// PushWebhookPending to try again after RetryIn.
	State   string
	RetryIn time.Duration
	Status  int // the HTTP status, 0 without an answer
	Error   string
}

// FinishPushWebhookDelivery records the outcome of attempt number attempt of a
// delivery. It reports false, recording nothing, when the delivery is no
// longer that attempt's (another replica took it over, or it was cancelled).
func (s *Store) FinishPushWebhookDelivery(ctx context.Context, id int64, attempt int, o PushWebhookOutcome) (bool, error) {
	const where = ` WHERE id = $1 AND attempts = $2 AND state = 'pending'`
	var sql string
	args := []any{id, attempt, o.Status, o.Error}
	switch o.State {
	case PushWebhookDelivered:
		sql, args = `UPDATE push_webhook_deliveries SET state = 'delivered', delivered_at = now(), last_status = NULLIF($3, 0),
			last_error = NULL`+where, args[:3]
	case PushWebhookFailed:
		sql = `UPDATE push_webhook_deliveries SET state = 'failed', failed_at = now(), last_status = NULLIF($3, 0),
			last_error = NULLIF($4, '')` + where
	case PushWebhookPending:
		sql = `UPDATE push_webhook_deliveries SET next_attempt_at = now() + $5 * interval '1 microsecond',
			last_status = NULLIF($3, 0), last_error = NULLIF($4, '')` + where
		args = append(args, o.RetryIn.Microseconds())
	default:
		return false, fmt.Errorf("recording webhook delivery: unknown state %q", o.State)
	}
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return false, fmt.Errorf("recording webhook delivery: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// NextPushWebhookDue returns how long until the next pending webhook delivery is
// due (0 or less: due now), and false when none is pending.
func (s *Store) NextPushWebhookDue(ctx context.Context) (time.Duration, bool, error) {
	var us *int64
	if err := s.pool.QueryRow(ctx, `SELECT (EXTRACT(EPOCH FROM min(next_attempt_at) - now()) * 1e6)::bigint
		FROM push_webhook_deliveries WHERE state = 'pending'`).Scan(&us); err != nil {
		return 0, false, fmt.Errorf("reading next webhook delivery: %w", err)
	}
	if us == nil {
		return 0, false, nil
	}
	return time.Duration(*us) * time.Microsecond, true, nil
}

// PushWebhookDeliveryState is a webhook delivery as recorded.
type PushWebhookDeliveryState struct {
	ID            int64
	Seq           int64
	PartnerID     string
	PartnerUserID string
	State         string
	Attempts      int
	LastStatus    int
	LastError     string
	DeliveredAt   *time.Time
	FailedAt      *time.Time
}

// PushWebhookDeliveries returns the webhook deliveries of a push, by id.
func (s *Store) PushWebhookDeliveries(ctx context.Context, seq int64) ([]PushWebhookDeliveryState, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, seq, partner_id, partner_user_id, state, attempts, COALESCE(last_status, 0),
			COALESCE(last_error, ''), delivered_at, failed_at
		FROM push_webhook_deliveries WHERE seq = $1 ORDER BY id`, seq)
	if err != nil {
		return nil, fmt.Errorf("reading webhook deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PushWebhookDeliveryState])
	if err != nil {
		return nil, fmt.Errorf("reading webhook deliveries: %w", err)
	}
	return out, nil
}

func nullableUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// DeleteExpiredPresence deletes presence rows past their expiry: those of
// replicas that died holding streams. Readers already ignore them; live
// replicas delete them when they renew, and this sweep when none does.
func (s *Store) DeleteExpiredPresence(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM push_presence WHERE expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("deleting expired push presence: %w", err)
	}
	return tag.RowsAffected(), nil
}

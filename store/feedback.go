package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
)

// Feedback (F18): what Twilio and SendGrid report about the messages
// Crescendo sent, and what fans answer. Each webhook event is applied in one
// transaction together with its de-duplication key (webhook_events), so a
// provider's retry or duplicate changes nothing the second time.

// Redelivery is an offer whose send failed after the provider took it: the
// offer waits for delivery again, over its next channel.
type Redelivery struct {
	// OfferID is the reopened offer, "issued" again.
	OfferID uuid.UUID
	// Round counts the offer's redeliveries, 1 for the first. With OfferID it
	// tells this delivery from the offer's earlier ones, whose jobs are done.
	Round int
	// Failed is the channel that did not reach the fan; from now on it is
	// one of the offer's Refused channels.
	Failed offers.Channel
}

// RedeliverFunc queues the delivery of reopened offers inside the transaction
// that reopened them, so an offer is never reopened without its delivery job.
type RedeliverFunc func(ctx context.Context, tx pgx.Tx, r []Redelivery) error

// Feedback applies provider webhooks to offers, suppressions and the consent
// ledger, and queues the delivery of the offers they reopen through Redeliver
// (nil leaves reopened offers to whoever queues them).
type Feedback struct {
	// Store holds the offers, suppressions and ledger.
	Store *Store
	// Redeliver queues reopened offers' deliveries; the dispatcher's.
	Redeliver RedeliverFunc
}

// ConsentChange is what a fan asks of one of their contact points.
type ConsentChange string

// Consent changes through a channel.
const (
	// OptOut stops messages to the contact point (STOP, unsubscribe).
	OptOut ConsentChange = "opt_out"
	// OptIn takes an opt-out back (START).
	OptIn ConsentChange = "opt_in"
)

// ChannelConsent is a fan's opt-out or opt-in for one contact point, as the
// consent ledger keeps it: who (the address, and the fans who have it), when,
// where the request came from, and in what words.
type ChannelConsent struct {
	Channel offers.Channel // sms or email
	Address string         // E.164 number or email address
	// Reason names the suppression an opt-out makes: "stop", "unsubscribe", …
	Reason string
	// Source is where the request came from: "twilio:inbound",
	// "sendgrid:unsubscribe", "partner:streamly".
	Source string
	// Wording is the fan's own words (the text they sent) or what they used.
	Wording string
	// Actor is who passed the request on, e.g. "twilio" or "partner:streamly".
	Actor string
	// At is when Crescendo learned of it.
	At time.Time
}

// consentReasons are the suppressions a fan's own opt-in lifts; bounces and
// carriers' refusals stay until the address is shown to work.
var consentReasons = []string{"stop", "unsubscribe", "group_unsubscribe", "spamreport", "opt_out"}

// SMSReceipt is a Twilio status callback about a message Crescendo sent.
type SMSReceipt struct {
	// MessageSID is the SID Twilio answered the send with.
	MessageSID string
	// Status is Twilio's MessageStatus: queued, sent, delivered, undelivered, failed, …
	Status string
	// ErrorCode is Twilio's ErrorCode, 0 when there is none.
	ErrorCode int
	// To is the number the message went to.
	To string
}

// InboundSMS is a text a fan sent to Crescendo's number.
type InboundSMS struct {
	// MessageSID is the inbound message's own SID, its de-duplication key.
	MessageSID string
	// From is the fan's number (E.164).
	From string
	// Body is the text as the fan wrote it.
	Body string
	// Change is what the text asks for (STOP, START); empty for anything else.
	Change ConsentChange
}

// EmailEvent is one event of SendGrid's Event Webhook.
type EmailEvent struct {
	// EventID is sg_event_id, SendGrid's de-duplication key.
	EventID string
	// Event is delivered, bounce, dropped, spamreport, unsubscribe,
	// group_unsubscribe, group_resubscribe, open, click, …
	Event string
	// Email is the recipient's address.
	Email string
	// MessageID is the X-Message-Id of the send: sg_message_id up to its first dot.
	MessageID string
	// OfferID is the offer_id custom argument, uuid.Nil when absent.
	OfferID uuid.UUID
	// Type tells a bounce ("bounce") from a block ("blocked").
	Type string
	// Reason is SendGrid's reason for a drop ("Bounced Address", …).
	Reason string
	// Status is the enhanced SMTP status of a bounce ("5.1.1"); kept in
	// place of the bounce's reason, which quotes the address.
	Status string
	// ASMGroupID is the unsubscribe group of a group (un)subscribe.
	ASMGroupID int
	// At is when it happened (the event's timestamp).
	At time.Time
}

// smsContactFailures are Twilio error codes that say the number itself cannot
// take texts: invalid, unsubscribed, unroutable, not mobile, blocked, unknown
// handset, landline. Other failures (carrier filtering, an unreachable phone,
// the account's own problems) do not suppress the number.
var smsContactFailures = []int{21211, 21610, 21612, 21614, 30004, 30005, 30006}

// contentDrops are SendGrid drop reasons about the message or the account,
// not the address: they do not suppress it.
var contentDrops = []string{"invalid smtpapi header", "spam content", "recipient list over package quota"}

// maxDetail bounds the provider text kept with an event or an attempt.
const maxDetail = 300

// redeliveryLookback is how far back ReopenUndelivered looks for failure
// receipts that came before the send they report on was recorded.
const redeliveryLookback = 24 * time.Hour

// ApplySMSReceipt applies a Twilio status callback: delivered is noted on the
// offer; undelivered and failed reopen the offer for its next channel (see
// Redelivery), and suppress the number when the error says the number cannot
// take texts. Other statuses change nothing. It reports false for a repeat
// (same MessageSid and status) or a status it does not act on.
func (f Feedback) ApplySMSReceipt(ctx context.Context, r SMSReceipt, at time.Time) (bool, error) {
	if r.MessageSID == "" {
		return false, errors.New("applying SMS receipt: MessageSid is required")
	}
	status := strings.ToLower(r.Status)
	if status != "delivered" && status != "undelivered" && status != "failed" {
		return false, nil
	}
	ev := webhookEvent{provider: "twilio", key: "status/" + r.MessageSID + "/" + status, kind: status,
		messageID: r.MessageSID, failure: status != "delivered"}
	if r.ErrorCode != 0 {
		ev.detail = fmt.Sprintf("error %d", r.ErrorCode)
	}
	return f.once(ctx, ev, at, func(tx pgx.Tx) ([]Redelivery, error) {
		if !ev.failure {
			return nil, noteReceipt(ctx, tx, offers.ChannelSMS, r.MessageSID, status, at)
		}
		if r.To != "" && slices.Contains(smsContactFailures, r.ErrorCode) {
			if err := suppress(ctx, tx, offers.ChannelSMS, r.To, fmt.Sprintf("twilio_error_%d", r.ErrorCode), "twilio:status", at); err != nil {
				return nil, err
			}
		}
		return reopenUndelivered(ctx, tx, at, r.MessageSID)
	})
}

// ApplyInboundSMS applies a text a fan sent: an opt-out suppresses the
// sender's number for SMS and an opt-in lifts its suppression, each with a
// consent ledger entry. It reports false for a repeat (same MessageSid).
func (f Feedback) ApplyInboundSMS(ctx context.Context, in InboundSMS, at time.Time) (bool, error) {
	if in.MessageSID == "" || in.From == "" {
		return false, errors.New("applying inbound SMS: MessageSid and From are required")
	}
	ev := webhookEvent{provider: "twilio", key: "inbound/" + in.MessageSID, kind: "inbound", detail: string(in.Change)}
	return f.once(ctx, ev, at, func(tx pgx.Tx) ([]Redelivery, error) {
		c := ChannelConsent{Channel: offers.ChannelSMS, Address: in.From, Reason: "stop", Source: "twilio:inbound",
			Wording: clip(strings.TrimSpace(in.Body)), Actor: "twilio", At: at}
		switch in.Change {
		case OptOut:
			return nil, optOut(ctx, tx, c)
		case OptIn:
			// A text from the number shows it works: every suppression goes.
			return nil, optIn(ctx, tx, c, nil)
		}
		return nil, nil
	})
}

// ApplyEmailEvent applies one SendGrid event: delivered is noted on the
// offer; bounce and dropped reopen the offer for its next channel and
// suppress the address (not for a block, or a drop over the message's
// content); spamreport, unsubscribe and group_unsubscribe suppress it with a
// consent ledger entry, group_resubscribe lifts a group unsubscribe; click
// records the offer's first open. Other events (processed, deferred, open)
// change nothing: opens are mostly mail clients and scanners prefetching
// images, which would fake the fan's reaction time. It reports false for a
// repeat (same sg_event_id) or an event it does not act on.
func (f Feedback) ApplyEmailEvent(ctx context.Context, e EmailEvent, at time.Time) (bool, error) {
	switch e.Event {
	case "delivered", "bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe", "click":
	default:
		return false, nil
	}
	address := normalAddress(offers.ChannelEmail, e.Email)
	key := e.EventID
	if key == "" {
		// SendGrid always sends sg_event_id; without one, the event's own
		// content is the best key there is.
		key = fmt.Sprintf("%s/%s/%s/%d", e.Event, e.MessageID, address, e.At.Unix())
	}
	ev := webhookEvent{provider: "sendgrid", key: key, kind: e.Event, messageID: e.MessageID,
		failure: e.Event == "bounce" || e.Event == "dropped"}
	switch e.Event {
	case "bounce":
		ev.detail = clip(strings.TrimSpace(e.Type + " " + e.Status))
	case "dropped":
		ev.detail = clip(e.Reason)
	}
	return f.once(ctx, ev, at, func(tx pgx.Tx) ([]Redelivery, error) {
		c := ChannelConsent{Channel: offers.ChannelEmail, Address: address, Reason: e.Event, Source: "sendgrid:" + e.Event,
			Actor: "sendgrid", At: at}
		switch e.Event {
		case "delivered":
			return nil, noteReceipt(ctx, tx, offers.ChannelEmail, e.MessageID, e.Event, e.At)
		case "bounce", "dropped":
			if address != "" && suppressesAddress(e) {
				if err := suppress(ctx, tx, offers.ChannelEmail, address, e.Event, c.Source, at); err != nil {
					return nil, err
				}
			}
			return reopenUndelivered(ctx, tx, at, e.MessageID)
		case "spamreport":
			c.Wording = "marked the email as spam"
		case "unsubscribe":
			c.Wording = "unsubscribed through the email's link"
		case "group_unsubscribe":
			c.Wording = fmt.Sprintf("unsubscribed from group %d", e.ASMGroupID)
		case "group_resubscribe":
			c.Wording = fmt.Sprintf("resubscribed to group %d", e.ASMGroupID)
			return nil, optIn(ctx, tx, c, []string{"group_unsubscribe"})
		case "click":
			return nil, openedByClick(ctx, tx, e)
		}
		if address == "" {
			return nil, nil
		}
		return nil, optOut(ctx, tx, c)
	})
}

// suppressesAddress reports whether a bounce or a drop says the address
// itself is bad, unsubscribed or reported spam.
func suppressesAddress(e EmailEvent) bool {
	if e.Event == "bounce" {
		return e.Type != "blocked"
	}
	return !slices.Contains(contentDrops, strings.ToLower(strings.TrimSpace(e.Reason)))
}

// ReopenUndelivered reopens offers whose send a failure receipt reported
// before the send itself was recorded (the receipt overtook the delivery
// worker): it is meant to run on a schedule, shortly after. It returns how
// many offers it reopened or failed.
func (f Feedback) ReopenUndelivered(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, f.Store.pool, func(tx pgx.Tx) error {
		redo, moved, err := reopen(ctx, tx, now, `e.received_at > $1 ORDER BY e.id LIMIT 1000`, now.Add(-redeliveryLookback))
		if err != nil {
			return err
		}
		n = int64(moved)
		return f.redeliver(ctx, tx, redo)
	})
	return n, err
}

// PruneWebhookEvents forgets the de-duplication keys of webhook events
// received before before, and returns how many it deleted. Providers stop
// retrying within a day (SendGrid: 24 hours), so a week's keys are plenty;
// suppressions, offers and the ledger keep what the events did.
func (s *Store) PruneWebhookEvents(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_events WHERE received_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("pruning webhook events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// OptOut suppresses a contact point at once and writes the opt-out to the
// consent ledger, in one transaction: the next delivery skips the channel
// (Delivery.Suppressed). For opt-outs that reach Crescendo some other way
// than a provider webhook, e.g. a fan's choice in a partner app.
func (s *Store) OptOut(ctx context.Context, c ChannelConsent) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return optOut(ctx, tx, c) })
}

// OptIn lifts the suppressions of a contact point that were the fan's own
// choice (not bounces or carriers' refusals) and writes the opt-in to the
// consent ledger, in one transaction.
func (s *Store) OptIn(ctx context.Context, c ChannelConsent) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return optIn(ctx, tx, c, consentReasons) })
}

// Suppressed reports whether a contact point is suppressed now.
func (s *Store) Suppressed(ctx context.Context, channel offers.Channel, address string) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM suppressions WHERE channel = $1 AND address = $2 AND lifted_at IS NULL)`,
		string(channel), normalAddress(channel, address)).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("reading suppressions: %w", err)
	}
	return found, nil
}

// webhookEvent is the de-duplication record of one provider event.
type webhookEvent struct {
	provider, key, kind, messageID, detail string
	failure                                bool
}

// once applies an event in one transaction with its de-duplication key, and
// queues the deliveries it reopened in that transaction; a key already
// recorded is a repeat, and nothing runs. It reports whether it applied.
func (f Feedback) once(ctx context.Context, ev webhookEvent, at time.Time, apply func(pgx.Tx) ([]Redelivery, error)) (bool, error) {
	var applied bool
	err := pgx.BeginFunc(ctx, f.Store.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO webhook_events (provider, key, kind, message_id, failure, detail, received_at)
			VALUES ($1, $2, $3, NULLIF($4, ''), $5, NULLIF($6, ''), $7) ON CONFLICT (provider, key) DO NOTHING`,
			ev.provider, ev.key, ev.kind, ev.messageID, ev.failure, ev.detail, at)
		if err != nil {
			return fmt.Errorf("recording %s webhook event: %w", ev.provider, err)
		}
		applied = tag.RowsAffected() == 1
		if !applied {
			return nil
		}
		redo, err := apply(tx)
		if err != nil {
			return err
		}
		return f.redeliver(ctx, tx, redo)
	})
	if err != nil {
		return false, err
	}
	return applied, nil
}

func (f Feedback) redeliver(ctx context.Context, tx pgx.Tx, redo []Redelivery) error {
	if len(redo) == 0 || f.Redeliver == nil {
		return nil
	}
	if err := f.Redeliver(ctx, tx, redo); err != nil {
		return fmt.Errorf("queueing redeliveries: %w", err)
	}
	return nil
}

// noteReceipt records a provider's delivery receipt on the offer whose
// current send it names.
func noteReceipt(ctx context.Context, tx pgx.Tx, ch offers.Channel, messageID, status string, at time.Time) error {
	if messageID == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE offers SET provider_status = $3, provider_status_at = $4 WHERE provider_id = $1 AND channel = $2`,
		messageID, string(ch), status, at); err != nil {
		return fmt.Errorf("noting delivery receipt: %w", err)
	}
	return nil
}

// reopenUndelivered reopens the offer whose current send messageID failed.
func reopenUndelivered(ctx context.Context, tx pgx.Tx, now time.Time, messageID string) ([]Redelivery, error) {
	if messageID == "" {
		return nil, nil
	}
	redo, _, err := reopen(ctx, tx, now, `e.message_id = $1`, messageID)
	return redo, err
}

// reopen moves offers whose current send a failure receipt reports (the
// webhook events matching where) away from "delivered": back to "issued",
// with a failed attempt on the channel, while the offer lasts, otherwise to
// "failed". An offer the fan already opened stays as it is: it reached them.
func reopen(ctx context.Context, tx pgx.Tx, now time.Time, where string, arg any) ([]Redelivery, int, error) {
	rows, err := tx.Query(ctx, `SELECT o.id, o.channel, o.provider_id, o.expires_at, e.kind, COALESCE(e.detail, '')
		FROM webhook_events e
		JOIN offers o ON o.provider_id = e.message_id AND o.channel = CASE e.provider WHEN 'twilio' THEN 'sms' ELSE 'email' END
		WHERE e.failure AND o.status = 'delivered' AND o.opened_at IS NULL AND `+where, arg)
	if err != nil {
		return nil, 0, fmt.Errorf("finding undelivered offers: %w", err)
	}
	type failed struct {
		offer              uuid.UUID
		channel, messageID string
		expires            time.Time
		kind, detail       string
	}
	var found []failed
	var c failed
	if _, err := pgx.ForEachRow(rows, []any{&c.offer, &c.channel, &c.messageID, &c.expires, &c.kind, &c.detail}, func() error {
		found = append(found, c)
		return nil
	}); err != nil {
		return nil, 0, fmt.Errorf("finding undelivered offers: %w", err)
	}
	var redo []Redelivery
	moved := 0
	for _, c := range found {
		what := strings.TrimSpace(c.channel + " " + c.kind + " " + parenthesize(c.detail))
		var round int
		var err error
		if c.expires.After(now) {
			// The guard re-checks under the row's lock: a repeat or a
			// concurrent redemption leaves the offer alone.
			err = tx.QueryRow(ctx, `UPDATE offers SET status = 'issued', channel = NULL, provider_id = NULL, delivered_at = NULL,
					provider_status = NULL, provider_status_at = NULL, redeliveries = redeliveries + 1, status_reason = $3
				WHERE id = $1 AND provider_id = $2 AND status = 'delivered' AND opened_at IS NULL RETURNING redeliveries`,
				c.offer, c.messageID, what+": trying the next channel").Scan(&round)
		} else {
			err = tx.QueryRow(ctx, `UPDATE offers SET status = 'failed', provider_status = $3, provider_status_at = $4, status_reason = $5
				WHERE id = $1 AND provider_id = $2 AND status = 'delivered' AND opened_at IS NULL RETURNING redeliveries`,
				c.offer, c.messageID, c.kind, now, what+" after the offer's lifetime").Scan(&round)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reopening offer %s: %w", c.offer, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO delivery_attempts (offer_id, channel, outcome, provider_id, detail, attempted_at)
			VALUES ($1, $2, 'failed', $3, $4, $5)`, c.offer, c.channel, c.messageID, "provider receipt: "+what, now); err != nil {
			return nil, 0, fmt.Errorf("recording undelivered attempt: %w", err)
		}
		moved++
		if c.expires.After(now) {
			redo = append(redo, Redelivery{OfferID: c.offer, Round: round, Failed: offers.Channel(c.channel)})
		}
	}
	return redo, moved, nil
}

// openedByClick records the first open of the offer a clicked email carried,
// as its link does.
func openedByClick(ctx context.Context, tx pgx.Tx, e EmailEvent) error {
	if _, err := tx.Exec(ctx, `UPDATE offers SET opened_at = GREATEST($3, COALESCE(delivered_at, issued_at))
		WHERE (id = $1 OR provider_id = $2 AND channel = 'email')
			AND opened_at IS NULL AND status IN ('issued', 'delivered') AND expires_at > $3`,
		e.OfferID, e.MessageID, e.At); err != nil {
		return fmt.Errorf("recording email click: %w", err)
	}
	return nil
}

// optOut suppresses the contact point (if it is not already) and writes the
// request to the ledger: every request is kept, repeats included.
func optOut(ctx context.Context, tx pgx.Tx, c ChannelConsent) error {
	if err := suppress(ctx, tx, c.Channel, c.Address, c.Reason, c.Source, c.At); err != nil {
		return err
	}
	return ledgerContact(ctx, tx, OptOut, c)
}

// optIn lifts the contact point's active suppression when its reason is one
// of lifts (nil: any) and writes the request to the ledger.
func optIn(ctx context.Context, tx pgx.Tx, c ChannelConsent, lifts []string) error {
	if _, err := tx.Exec(ctx, `UPDATE suppressions SET lifted_at = $3, lift_source = $4
		WHERE channel = $1 AND address = $2 AND lifted_at IS NULL AND ($5::text[] IS NULL OR reason = ANY ($5))`,
		string(c.Channel), normalAddress(c.Channel, c.Address), c.At, c.Source, lifts); err != nil {
		return fmt.Errorf("lifting suppression: %w", err)
	}
	return ledgerContact(ctx, tx, OptIn, c)
}

// suppress makes a contact point's suppression active, unless one already is.
func suppress(ctx context.Context, tx pgx.Tx, ch offers.Channel, address, reason, source string, at time.Time) error {
	address = normalAddress(ch, address)
	if address == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO suppressions (channel, address, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (channel, address) WHERE lifted_at IS NULL DO NOTHING`, string(ch), address, reason, source, at); err != nil {
		return fmt.Errorf("suppressing %s contact point: %w", ch, err)
	}
	return nil
}

// ledgerContact writes a channel opt-out or opt-in to the consent ledger:
// one entry per fan with that contact point, or one without a fan when none
// has it (the number or address still opted out).
func ledgerContact(ctx context.Context, tx pgx.Tx, change ConsentChange, c ChannelConsent) error {
	address := normalAddress(c.Channel, c.Address)
	if address == "" {
		return nil
	}
	_, err := tx.Exec(ctx, `WITH holders AS (
			SELECT id FROM fans WHERE $1 = 'sms' AND phone = $2 OR $1 = 'email' AND lower(email) = $2
		)
		INSERT INTO consent_ledger (fan_id, partner_id, partner_user_id, action, wording, actor, channel, address, source, recorded_at)
		SELECT h.id, '', '', $3, $4, $5, $1, $2, $6, $7
		FROM (SELECT id FROM holders UNION ALL SELECT NULL::uuid WHERE NOT EXISTS (SELECT 1 FROM holders)) h`,
		string(c.Channel), address, string(change), c.Wording, c.Actor, c.Source, c.At)
	if err != nil {
		return fmt.Errorf("writing consent ledger: %w", err)
	}
	return nil
}

// normalAddress is how suppressions key a contact point: numbers as given
// (E.164), email addresses in lower case.
func normalAddress(ch offers.Channel, address string) string {
	address = strings.TrimSpace(address)
	if ch == offers.ChannelEmail {
		return strings.ToLower(address)
	}
	return address
}

func parenthesize(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

// clip bounds provider and fan text kept in the database.
func clip(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

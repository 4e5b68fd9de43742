package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

const (
	fanPhone = "+14155550100"
	fanEmail = "fan@example.com"
)

// desk is a store with one fan (phone and email) and the redeliveries its
// feedback queued.
type desk struct {
	s   *store.Store
	fb  store.Feedback
	fan uuid.UUID
	now time.Time

	mu   sync.Mutex
	redo []store.Redelivery
}

func newDesk(t *testing.T) *desk {
	t.Helper()
	s := open(t)
	catalog(t, s)
	d := &desk{s: s, fan: uuid.New(), now: time.Now().UTC().Truncate(time.Microsecond)}
	must(t, s.PutFan(t.Context(), store.Fan{ID: d.fan, DisplayName: "Robin", Phone: fanPhone, Email: "Fan@Example.com", TimeZone: "UTC"}))
	d.fb = store.Feedback{Store: s, Redeliver: func(_ context.Context, _ pgx.Tx, r []store.Redelivery) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.redo = append(d.redo, r...)
		return nil
	}}
	return d
}

// offer stores an offer of the desk's fan, delivered over ch as messageID
// (issued and not yet sent when messageID is empty), lasting for lifetime.
func (d *desk) offer(t *testing.T, tier int, ch offers.Channel, messageID string, lifetime time.Duration) uuid.UUID {
	t.Helper()
	id := uuid.New()
	status := "delivered"
	if messageID == "" {
		status = "issued"
	}
	_, err := d.s.Pool().Exec(t.Context(), `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, status, channel, provider_id, issued_at, expires_at, delivered_at)
		VALUES ($1, $2, 'r', 1, $3, 'perf', 'show', '{presale}', 30, 'e', 0, $4, NULLIF($5, ''), NULLIF($6, ''), $7, $8,
			CASE WHEN $4 = 'delivered' THEN $7::timestamptz END)`,
		id, d.fan, tier, status, string(ch), messageID, d.now.Add(-time.Minute), d.now.Add(lifetime))
	must(t, err)
	return id
}

func (d *desk) redelivered() []store.Redelivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.redo)
}

func (d *desk) delivery(t *testing.T, id uuid.UUID) store.Delivery {
	t.Helper()
	del, err := d.s.Delivery(t.Context(), id)
	must(t, err)
	return del
}

func (d *desk) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	must(t, d.s.Pool().QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

func applied(t *testing.T, want bool, ok bool, err error) {
	t.Helper()
	must(t, err)
	if ok != want {
		t.Fatalf("applied = %v, want %v", ok, want)
	}
}

func TestUndeliveredTextReopensTheOfferForItsNextChannelOnce(t *testing.T) {
	d := newDesk(t)
	id := d.offer(t, 1, offers.ChannelSMS, "SM1", time.Hour)
	receipt := store.SMSReceipt{MessageSID: "SM1", Status: "undelivered", ErrorCode: 30003, To: fanPhone}

	ok, err := d.fb.ApplySMSReceipt(t.Context(), receipt, d.now)
	applied(t, true, ok, err)
	ok, err = d.fb.ApplySMSReceipt(t.Context(), receipt, d.now.Add(time.Second))
	applied(t, false, ok, err)

	del := d.delivery(t, id)
	if del.Status != store.OfferIssued || !slices.Equal(del.Refused, []offers.Channel{offers.ChannelSMS}) || len(del.Suppressed) != 0 {
		t.Fatalf("after undelivered: status %s, refused %v, suppressed %v; want issued, [sms], none (30003 is the phone, not the number)",
			del.Status, del.Refused, del.Suppressed)
	}
	if got := d.redelivered(); !slices.Equal(got, []store.Redelivery{{OfferID: id, Round: 1, Failed: offers.ChannelSMS}}) {
		t.Fatalf("redeliveries %+v, want one, round 1", got)
	}
	if n := d.count(t, `SELECT count(*) FROM delivery_attempts WHERE offer_id = $1 AND outcome = 'failed' AND provider_id = 'SM1'`, id); n != 1 {
		t.Fatalf("%d failed attempts, want 1", n)
	}
	// A late "delivered" for the old send names no offer's current send any more.
	ok, err = d.fb.ApplySMSReceipt(t.Context(), store.SMSReceipt{MessageSID: "SM1", Status: "delivered"}, d.now)
	applied(t, true, ok, err)
	if del := d.delivery(t, id); del.Status != store.OfferIssued {
		t.Fatalf("a stale receipt moved the offer to %s", del.Status)
	}
	// Statuses on the way change nothing and are not recorded.
	ok, err = d.fb.ApplySMSReceipt(t.Context(), store.SMSReceipt{MessageSID: "SM1", Status: "sent"}, d.now)
	applied(t, false, ok, err)
}

func TestDeliveredReceiptIsNotedAndAFailureAfterTheLifetimeEndsTheOffer(t *testing.T) {
	d := newDesk(t)
	ok1 := d.offer(t, 1, offers.ChannelEmail, "msg-ok", time.Hour)
	late := d.offer(t, 2, offers.ChannelEmail, "msg-late", time.Minute)
	ok, err := d.fb.ApplyEmailEvent(t.Context(), store.EmailEvent{EventID: "e1", Event: "delivered", Email: fanEmail, MessageID: "msg-ok", At: d.now}, d.now)
	applied(t, true, ok, err)
	var status string
	var at time.Time
	must(t, d.s.Pool().QueryRow(t.Context(), `SELECT provider_status, provider_status_at FROM offers WHERE id = $1`, ok1).Scan(&status, &at))
	if status != "delivered" || !at.Equal(d.now) {
		t.Fatalf("provider status %q at %v, want delivered at %v", status, at, d.now)
	}

	ok, err = d.fb.ApplyEmailEvent(t.Context(), store.EmailEvent{EventID: "e2", Event: "bounce", Type: "blocked", Email: fanEmail,
		MessageID: "msg-late", Reason: "451 try later", At: d.now}, d.now.Add(2*time.Minute))
	applied(t, true, ok, err)
	del := d.delivery(t, late)
	if del.Status != store.OfferFailed || len(del.Suppressed) != 0 || len(d.redelivered()) != 0 {
		t.Fatalf("blocked after the lifetime: status %s, suppressed %v, redelivered %v; want failed, none, none",
			del.Status, del.Suppressed, d.redelivered())
	}
}

func TestAFailureReceiptThatOvertakesTheSendIsAppliedAfterIt(t *testing.T) {
	d := newDesk(t)
	id := d.offer(t, 1, offers.ChannelSMS, "", time.Hour)
	// Twilio's callback arrives while the worker has yet to record its send.
	ok, err := d.fb.ApplySMSReceipt(t.Context(), store.SMSReceipt{MessageSID: "SM2", Status: "failed", ErrorCode: 30006, To: fanPhone}, d.now)
	applied(t, true, ok, err)
	if del := d.delivery(t, id); del.Status != store.OfferIssued || !slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelSMS}) {
		t.Fatalf("status %s, suppressed %v; want issued, [sms] (30006: a landline)", del.Status, del.Suppressed)
	}
	moved, err := d.s.MarkDelivered(t.Context(), store.Attempt{OfferID: id, Channel: offers.ChannelSMS, ProviderID: "SM2"}, d.now)
	if err != nil || !moved {
		t.Fatalf("MarkDelivered: %v, %v", moved, err)
	}
	n, err := d.fb.ReopenUndelivered(t.Context(), d.now.Add(time.Minute))
	must(t, err)
	if n != 1 || d.delivery(t, id).Status != store.OfferIssued || len(d.redelivered()) != 1 {
		t.Fatalf("reconciled %d, status %s, redelivered %v; want 1, issued, one", n, d.delivery(t, id).Status, d.redelivered())
	}
	if n, err := d.fb.ReopenUndelivered(t.Context(), d.now.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second run reconciled %d, %v; want 0", n, err)
	}
	// Pruned keys are forgotten; what the events did stays.
	if n, err := d.s.PruneWebhookEvents(t.Context(), d.now); err != nil || n != 0 {
		t.Fatalf("pruning before the event: %d, %v; want 0", n, err)
	}
	if n, err := d.s.PruneWebhookEvents(t.Context(), d.now.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("pruning after the event: %d, %v; want 1", n, err)
	}
	if s, err := d.s.Suppressed(t.Context(), offers.ChannelSMS, fanPhone); err != nil || !s {
		t.Fatalf("after pruning: suppressed %v, %v", s, err)
	}
}

func TestAnOpenedOfferStaysDeliveredWhateverTheReceiptSays(t *testing.T) {
	d := newDesk(t)
	id := d.offer(t, 1, offers.ChannelEmail, "msg-1", time.Hour)
	_, err := d.s.Pool().Exec(t.Context(), `UPDATE offers SET opened_at = $2 WHERE id = $1`, id, d.now)
	must(t, err)
	ok, err := d.fb.ApplyEmailEvent(t.Context(), store.EmailEvent{EventID: "e1", Event: "bounce", Type: "bounce", Email: fanEmail, MessageID: "msg-1"}, d.now)
	applied(t, true, ok, err)
	if del := d.delivery(t, id); del.Status != store.OfferDelivered || !slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelEmail}) {
		t.Fatalf("status %s, suppressed %v; want delivered (it was opened), [email]", del.Status, del.Suppressed)
	}
}

func TestStopAndStartChangeTheNumbersSuppressionWithALedgerEntryEach(t *testing.T) {
	d := newDesk(t)
	ctx := t.Context()
	id := d.offer(t, 1, offers.ChannelEmail, "", time.Hour)
	stop := store.InboundSMS{MessageSID: "SMin1", From: fanPhone, Body: " stop ", Change: store.OptOut}
	ok, err := d.fb.ApplyInboundSMS(ctx, stop, d.now)
	applied(t, true, ok, err)
	ok, err = d.fb.ApplyInboundSMS(ctx, stop, d.now)
	applied(t, false, ok, err)
	if s, err := d.s.Suppressed(ctx, offers.ChannelSMS, fanPhone); err != nil || !s {
		t.Fatalf("after STOP: suppressed %v, %v", s, err)
	}
	if del := d.delivery(t, id); !slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelSMS}) {
		t.Fatalf("Delivery.Suppressed %v, want [sms]", del.Suppressed)
	}
	ledger := `SELECT count(*) FROM consent_ledger WHERE fan_id = $1 AND action = $2 AND channel = 'sms' AND address = $3
		AND source = 'twilio:inbound' AND wording = $4 AND actor = 'twilio' AND recorded_at = $5`
	if n := d.count(t, ledger, d.fan, "opt_out", fanPhone, "stop", d.now); n != 1 {
		t.Fatalf("%d opt-out ledger entries, want 1", n)
	}
	// HELP changes nothing; START lifts the suppression.
	ok, err = d.fb.ApplyInboundSMS(ctx, store.InboundSMS{MessageSID: "SMin2", From: fanPhone, Body: "HELP"}, d.now)
	applied(t, true, ok, err)
	ok, err = d.fb.ApplyInboundSMS(ctx, store.InboundSMS{MessageSID: "SMin3", From: fanPhone, Body: "Start", Change: store.OptIn}, d.now.Add(time.Minute))
	applied(t, true, ok, err)
	if s, err := d.s.Suppressed(ctx, offers.ChannelSMS, fanPhone); err != nil || s {
		t.Fatalf("after START: suppressed %v, %v", s, err)
	}
	if n := d.count(t, ledger, d.fan, "opt_in", fanPhone, "Start", d.now.Add(time.Minute)); n != 1 {
		t.Fatalf("%d opt-in ledger entries, want 1", n)
	}
	if n := d.count(t, `SELECT count(*) FROM suppressions WHERE address = $1 AND lifted_at IS NOT NULL AND lift_source = 'twilio:inbound'`, fanPhone); n != 1 {
		t.Fatalf("%d lifted suppressions, want 1 (kept, not deleted)", n)
	}
	// A number no fan has is opted out all the same, with an entry of its own.
	ok, err = d.fb.ApplyInboundSMS(ctx, store.InboundSMS{MessageSID: "SMin4", From: "+14155550999", Body: "QUIT", Change: store.OptOut}, d.now)
	applied(t, true, ok, err)
	if n := d.count(t, `SELECT count(*) FROM consent_ledger WHERE fan_id IS NULL AND address = '+14155550999' AND action = 'opt_out'`); n != 1 {
		t.Fatalf("%d ledger entries for the stranger's number, want 1", n)
	}
}

func TestEmailEventsSuppressTheAddressOnlyWhenItIsTheAddresss(t *testing.T) {
	d := newDesk(t)
	ctx := t.Context()
	suppressed := func(addr string) bool {
		t.Helper()
		s, err := d.s.Suppressed(ctx, offers.ChannelEmail, addr)
		must(t, err)
		return s
	}
	for i, e := range []store.EmailEvent{
		{Event: "bounce", Type: "blocked", Email: "blocked@example.com"},
		{Event: "dropped", Reason: "Spam Content", Email: "content@example.com"},
		{Event: "open", Email: "open@example.com"},
		{Event: "deferred", Email: "deferred@example.com"},
	} {
		e.EventID = uuid.NewString()
		if _, err := d.fb.ApplyEmailEvent(ctx, e, d.now); err != nil || suppressed(e.Email) {
			t.Fatalf("event %d (%s): %v; suppressed the address", i, e.Event, err)
		}
	}
	for _, e := range []store.EmailEvent{
		{Event: "bounce", Type: "bounce", Email: "Bounce@Example.com"},
		{Event: "dropped", Reason: "Bounced Address", Email: "dropped@example.com"},
		{Event: "spamreport", Email: "spam@example.com"},
		{Event: "unsubscribe", Email: "unsub@example.com"},
		{Event: "group_unsubscribe", ASMGroupID: 7, Email: "group@example.com"},
	} {
		e.EventID = uuid.NewString()
		if _, err := d.fb.ApplyEmailEvent(ctx, e, d.now); err != nil || !suppressed(e.Email) {
			t.Fatalf("%s: %v; the address is not suppressed", e.Event, err)
		}
	}
	// Opt-outs are in the ledger; bounces are not consent.
	if n := d.count(t, `SELECT count(*) FROM consent_ledger WHERE action = 'opt_out' AND channel = 'email'`); n != 3 {
		t.Fatalf("%d email opt-outs in the ledger, want 3", n)
	}
	// A group resubscribe lifts a group unsubscribe, not a spam report.
	for _, addr := range []string{"group@example.com", "spam@example.com"} {
		_, err := d.fb.ApplyEmailEvent(ctx, store.EmailEvent{EventID: uuid.NewString(), Event: "group_resubscribe", ASMGroupID: 7, Email: addr}, d.now)
		must(t, err)
	}
	if suppressed("group@example.com") || !suppressed("spam@example.com") {
		t.Fatal("group_resubscribe: want the group unsubscribe lifted and the spam report kept")
	}
}

func TestAClickRecordsTheFirstOpen(t *testing.T) {
	d := newDesk(t)
	id := d.offer(t, 1, offers.ChannelEmail, "msg-1", time.Hour)
	for i, at := range []time.Time{d.now.Add(time.Minute), d.now.Add(2 * time.Minute)} {
		_, err := d.fb.ApplyEmailEvent(t.Context(), store.EmailEvent{EventID: uuid.NewString(), Event: "click", OfferID: id, Email: fanEmail, At: at}, d.now)
		must(t, err)
		var opened time.Time
		must(t, d.s.Pool().QueryRow(t.Context(), `SELECT opened_at FROM offers WHERE id = $1`, id).Scan(&opened))
		if !opened.Equal(d.now.Add(time.Minute)) {
			t.Fatalf("click %d: opened_at %v, want the first click's time", i, opened)
		}
	}
}

func TestRepeatsRacingEachOtherApplyOnce(t *testing.T) {
	d := newDesk(t)
	id := d.offer(t, 1, offers.ChannelEmail, "msg-1", time.Hour)
	var wg sync.WaitGroup
	results := make([]bool, 8)
	for i := range results {
		wg.Go(func() {
			ok, err := d.fb.ApplyEmailEvent(t.Context(), store.EmailEvent{EventID: "same", Event: "dropped", Reason: "Bounced Address",
				Email: fanEmail, MessageID: "msg-1"}, d.now)
			if err != nil {
				t.Error(err)
			}
			results[i] = ok
		})
	}
	wg.Wait()
	if n := len(slices.DeleteFunc(results, func(ok bool) bool { return !ok })); n != 1 {
		t.Fatalf("%d of the repeats applied, want 1", n)
	}
	if got := d.redelivered(); len(got) != 1 || got[0].OfferID != id {
		t.Fatalf("redeliveries %+v, want one of %s", got, id)
	}
}

func TestErasureKeepsTheSuppressionButNotTheFansAddressInTheLedger(t *testing.T) {
	d := newDesk(t)
	ctx := t.Context()
	must(t, d.s.OptOut(ctx, store.ChannelConsent{Channel: offers.ChannelEmail, Address: fanEmail, Reason: "opt_out",
		Source: "partner:p", Wording: "no more emails", Actor: "partner:p", At: d.now}))
	must(t, d.s.EraseFan(ctx, d.fan, "test"))
	if n := d.count(t, `SELECT count(*) FROM consent_ledger WHERE fan_id = $1 AND action = 'opt_out' AND address IS NULL AND wording = ''`, d.fan); n != 1 {
		t.Fatalf("%d scrubbed opt-out entries, want 1", n)
	}
	if s, err := d.s.Suppressed(ctx, offers.ChannelEmail, "FAN@example.com"); err != nil || !s {
		t.Fatalf("after erasure: suppressed %v, %v; want the opt-out honoured still", s, err)
	}
	// A fan's own opt-in lifts their opt-out, not a bounce.
	must(t, d.s.OptIn(ctx, store.ChannelConsent{Channel: offers.ChannelEmail, Address: fanEmail, Source: "partner:p", Actor: "partner:p", At: d.now}))
	_, err := d.fb.ApplyEmailEvent(ctx, store.EmailEvent{EventID: "b", Event: "bounce", Email: fanEmail}, d.now)
	must(t, err)
	must(t, d.s.OptIn(ctx, store.ChannelConsent{Channel: offers.ChannelEmail, Address: fanEmail, Source: "partner:p", Actor: "partner:p", At: d.now}))
	if s, err := d.s.Suppressed(ctx, offers.ChannelEmail, fanEmail); err != nil || !s {
		t.Fatalf("an opt-in lifted a bounce: suppressed %v, %v", s, err)
	}
}

// The grouped writes do what their one-offer forms do: attempts logged, and
// only offers still waiting for delivery marked delivered, each with its
// channel, provider id and time; every one gets its 'sent' attempt.
func TestGroupedDeliveryBookkeeping(t *testing.T) {
	d := newDesk(t)
	ctx := t.Context()
	a := d.offer(t, 1, offers.ChannelSMS, "", time.Hour)
	b := d.offer(t, 2, offers.ChannelEmail, "", time.Hour)
	c := d.offer(t, 3, offers.ChannelSMS, "", time.Hour)
	must(t, d.s.FinishOffer(ctx, c, store.OfferExpired, "test"))
	must(t, d.s.RecordAttempts(ctx, []store.Attempt{
		{OfferID: a, Channel: offers.ChannelSMS, Outcome: store.AttemptSending},
		{OfferID: b, Channel: offers.ChannelEmail, Outcome: store.AttemptSending},
	}))
	for _, id := range []uuid.UUID{a, b} {
		dc, err := d.s.DeliveryContext(ctx, id)
		must(t, err)
		if len(dc.Open) != 1 {
			t.Fatalf("offer %s: open attempts %v after its sending attempt, want one", id, dc.Open)
		}
	}
	at := d.now.Add(time.Second)
	must(t, d.s.MarkDeliveredMany(ctx, []store.Delivered{
		{Attempt: store.Attempt{OfferID: a, Channel: offers.ChannelSMS, ProviderID: "SM-a"}, At: at},
		{Attempt: store.Attempt{OfferID: b, Channel: offers.ChannelEmail, ProviderID: "msg-b"}, At: at.Add(time.Second)},
		{Attempt: store.Attempt{OfferID: c, Channel: offers.ChannelSMS, ProviderID: "SM-c"}, At: at},
	}))
	for id, want := range map[uuid.UUID]struct {
		status, channel, provider string
		at                        time.Time
	}{a: {"delivered", "sms", "SM-a", at}, b: {"delivered", "email", "msg-b", at.Add(time.Second)}, c: {"expired", "sms", "", time.Time{}}} {
		var status string
		var channel, provider *string
		var deliveredAt *time.Time
		must(t, d.s.Pool().QueryRow(ctx, `SELECT status, channel, provider_id, delivered_at FROM offers WHERE id = $1`, id).
			Scan(&status, &channel, &provider, &deliveredAt))
		got := struct {
			status, channel, provider string
			at                        time.Time
		}{status: status}
		if channel != nil {
			got.channel = *channel
		}
		if provider != nil {
			got.provider = *provider
		}
		if deliveredAt != nil {
			got.at = deliveredAt.UTC()
		}
		if got != want {
			t.Errorf("offer %s: %+v, want %+v", id, got, want)
		}
		var sent int
		must(t, d.s.Pool().QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE offer_id = $1 AND outcome = 'sent'`, id).Scan(&sent))
		if sent != 1 {
			t.Errorf("offer %s: %d sent attempts, want 1", id, sent)
		}
		dc, err := d.s.DeliveryContext(ctx, id)
		must(t, err)
		if len(dc.Open) != 0 {
			t.Errorf("offer %s: open attempts %v after it was sent", id, dc.Open)
		}
	}
}

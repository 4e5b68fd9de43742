package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers"
	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// The store is what serves fans in production.
var _ api.Fans = (*store.Store)(nil)

// inAppClock is 14:00 UTC, inside the hours texts may go out in (the fans
// live in UTC), so that the dispatcher would text them if it were allowed.
var inAppClock = time.Date(2031, 3, 3, 14, 0, 0, 0, time.UTC)

// inAppDesk is a server with the fans' API on real Postgres, a dispatcher
// delivering through the provider sandboxes, and partners streamly and other.
type inAppDesk struct {
	*ruleDesk
	sb    *demo.Sandboxes
	queue *notifiers.Dispatcher
}

func newInAppDesk(t *testing.T) *inAppDesk {
	t.Helper()
	ctx := t.Context()
	st := openStore(t, pgtemp.New(t))
	for _, err := range []error{
		st.PutPartner(ctx, store.Partner{ID: "streamly", Name: "Streamly", APIKey: "pk_streamly"}),
		st.PutPartner(ctx, store.Partner{ID: "other", Name: "Other", APIKey: "pk_other"}),
		st.PutPerformer(ctx, "aurora", "Aurora Lane"),
		st.PutShow(ctx, store.Show{ID: "roundhouse", PerformerID: "aurora", Name: "Live at the Roundhouse",
			StartsAt: inAppClock.AddDate(0, 2, 0), VenueName: "Roundhouse", VenueLat: 51.54, VenueLon: -0.15}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A fan has one offer per rule tier: two rules make room for two.
	for _, rule := range []string{"presale", "encore"} {
		if _, err := st.PutRule(ctx, offers.Rule{ID: rule, PerformerID: "aurora", ShowID: "roundhouse", Lifetime: time.Hour,
			Tiers: []offers.Tier{{Threshold: 1, Perks: []string{"presale"}}}, Channels: []offers.Channel{offers.ChannelPush, offers.ChannelSMS, offers.ChannelEmail}}); err != nil {
			t.Fatal(err)
		}
	}
	hub := push.NewHub()
	h, err := api.New(api.Config{Partners: st, Fans: st, Push: hub, Clock: func() time.Time { return inAppClock }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	d := &inAppDesk{ruleDesk: checkedDesk(t, &tenants{url: srv.URL, store: st})}

	d.sb, err = demo.StartSandboxes()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.sb.Close)
	smsSender, err := sms.New(sms.Config{AccountSID: d.sb.TwilioSID, AuthToken: d.sb.TwilioToken, From: "+15005550006", BaseURL: d.sb.TwilioURL})
	if err != nil {
		t.Fatal(err)
	}
	mailSender, err := email.New(email.Config{APIKey: d.sb.SendGridKey, FromEmail: "offers@crescendo.example", BaseURL: d.sb.SendGridURL})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := offers.NewSigner("k1", map[string][]byte{"k1": bytes.Repeat([]byte{5}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	d.queue, err = notifiers.New(notifiers.Config{Pool: st.Pool(), Store: st, SMS: smsSender, Email: mailSender, Push: hub,
		Signer: signer, LinkBase: "https://crescendo.test/o/", Workers: 2, Logger: quiet, Clock: func() time.Time { return inAppClock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.queue.Stop(sctx); err != nil {
			t.Error(err)
		}
	})
	return d
}

// register makes the partner's user a fan with a phone and an address.
func (d *inAppDesk) register(t *testing.T, user, phone, address string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if err := d.store.BulkLoadFans(t.Context(), "streamly", []store.BulkFan{{
		Fan:           store.Fan{ID: id, DisplayName: "Fan " + user, Phone: phone, Email: address, TimeZone: "UTC"},
		PartnerUserID: user,
	}}); err != nil {
		t.Fatal(err)
	}
	return id
}

// issue issues an offer of rule to fan and queues its delivery, as a checkpoint does.
func (d *inAppDesk) issue(t *testing.T, fan uuid.UUID, rule string) uuid.UUID {
	t.Helper()
	ctx := t.Context()
	id := uuid.New()
	err := pgx.BeginFunc(ctx, d.store.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id, perks,
				index_value, event_id, partition, issued_at, expires_at)
			VALUES ($1, $2, $6, 1, 1, 'aurora', 'roundhouse', '{presale}', 1, $3, 0, $4, $5)`,
			id, fan, "streamly/"+id.String(), inAppClock, inAppClock.Add(time.Hour), rule); err != nil {
			return err
		}
		return d.queue.EnqueueTx(ctx, tx, []store.DeliveryJob{{OfferID: id}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// settled waits for the offer to leave issued and returns its state and reason.
func (d *inAppDesk) settled(t *testing.T, offer uuid.UUID) (status, channel, reason string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := d.store.Pool().QueryRow(t.Context(), `SELECT status, COALESCE(channel, ''), COALESCE(status_reason, '') FROM offers WHERE id = $1`,
			offer).Scan(&status, &channel, &reason)
		if err != nil {
			t.Fatal(err)
		}
		if status != store.OfferIssued {
			return status, channel, reason
		}
		if time.Now().After(deadline) {
			t.Fatalf("offer %s still issued after 15s", offer)
		}
		time.Sleep(10 * time.Millisecond) // polling the offer's row for the worker's outcome, not standing in for a signal
	}
}

// sentTo lists the recipients the sandboxes accepted messages for.
func (d *inAppDesk) sentTo() []string {
	var to []string
	for _, m := range d.sb.Twilio.Messages() {
		to = append(to, m.To)
	}
	for _, m := range d.sb.SendGrid.Messages() {
		for _, p := range m.Mail.Personalizations {
			for _, a := range p.To {
				to = append(to, a.Email)
			}
		}
	}
	return to
}

// TestInAppOptOutOverHTTPSuppressesLaterSends: a partner app records its
// user's opt-out with the wording it showed; only its own linked users can
// be changed, the ledger says what the fan chose channel by channel, the
// next offer reaches the fan on no channel while another fan's goes out, and
// opting back into email lets the one after that go by email.
func TestInAppOptOutOverHTTPSuppressesLaterSends(t *testing.T) {
	d := newInAppDesk(t)
	ada := d.register(t, "user-1", "+14155550101", "ada@example.com")
	bo := d.register(t, "user-2", "+14155550102", "bo@example.com")
	const path = "/v1/users/user-1/channel-consent"
	out := map[string]any{"change": "opt_out", "wording": "Stop sending me ticket offers"}

	for _, key := range []string{"", "pk_unknown"} {
		r := d.call(t, http.StatusUnauthorized, http.MethodPost, path, key, out)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("key %q: WWW-Authenticate %q", key, r.header.Get("WWW-Authenticate"))
		}
	}
	// Another partner's key reaches only its own users: streamly's user-1 is no user of other's.
	d.call(t, http.StatusNotFound, http.MethodPost, path, "pk_other", out)
	d.call(t, http.StatusNotFound, http.MethodPost, "/v1/users/nobody/channel-consent", "pk_streamly", out)
	r := d.call(t, http.StatusUnprocessableEntity, http.MethodPost, path, "pk_streamly",
		map[string]any{"change": "maybe", "channels": []string{"sms", "fax", "sms"}, "wording": " "})
	if got, want := r.problems(t), []string{"change", "channels[1]", "channels[2]", "wording"}; !slices.Equal(got, want) {
		t.Fatalf("problems %v; want %v", got, want)
	}
	d.call(t, http.StatusBadRequest, http.MethodPost, path, "pk_streamly", map[string]any{"change": "opt_out", "wording": "x", "why": "y"})
	if n := len(d.ledger(t, "user-1")); n != 0 {
		t.Fatalf("%d ledger entries after refused requests; want 0", n)
	}

	d.call(t, http.StatusNoContent, http.MethodPost, path, "pk_streamly", out)
	ledger := d.ledger(t, "user-1")
	var channels []string
	for _, e := range ledger {
		if e["action"] != "opt_out" || e["wording"] != out["wording"] || e["actor"] != "partner:streamly" || e["recorded_at"] != inAppClock.Format(time.RFC3339) {
			t.Fatalf("ledger entry %v; want the opt-out with its wording, by partner:streamly, at %s", e, inAppClock)
		}
		channels = append(channels, e["channel"].(string))
	}
	slices.Sort(channels)
	if want := []string{"email", "push", "sms"}; !slices.Equal(channels, want) {
		t.Fatalf("ledger entries for channels %v; want %v", channels, want)
	}

	// The next offers: Ada's reaches her on no channel, Bo's goes out.
	adaOffer, boOffer := d.issue(t, ada, "presale"), d.issue(t, bo, "presale")
	if status, _, reason := d.settled(t, adaOffer); status != store.OfferFailed || reason != "no reachable channel" {
		t.Fatalf("Ada's offer after her opt-out: %s (%s); want failed (no reachable channel)", status, reason)
	}
	if status, ch, _ := d.settled(t, boOffer); status != store.OfferDelivered || ch != "sms" {
		t.Fatalf("Bo's offer: %s over %q; want delivered over sms", status, ch)
	}
	if to := d.sentTo(); slices.Contains(to, "+14155550101") || slices.Contains(to, "ada@example.com") || !slices.Contains(to, "+14155550102") {
		t.Fatalf("the sandboxes took messages for %v; want Bo's text and nothing for Ada", to)
	}

	// Back into email only: the next offer goes by email, not by text.
	d.call(t, http.StatusNoContent, http.MethodPost, path, "pk_streamly",
		map[string]any{"change": "opt_in", "channels": []string{"email"}, "wording": "Email me ticket offers again"})
	if status, ch, _ := d.settled(t, d.issue(t, ada, "encore")); status != store.OfferDelivered || ch != "email" {
		t.Fatalf("Ada's offer after opting back into email: %s over %q; want delivered over email", status, ch)
	}
	if to := d.sentTo(); slices.Contains(to, "+14155550101") || !slices.Contains(to, "ada@example.com") {
		t.Fatalf("the sandboxes took messages for %v; want Ada's email and no text", to)
	}
	if ledger := d.ledger(t, "user-1"); len(ledger) != 4 || ledger[3]["action"] != "opt_in" || ledger[3]["channel"] != "email" {
		t.Fatalf("ledger after the opt-in: %v; want a fourth entry, opt_in on email", ledger)
	}
	// Other's key sees none of streamly's entries (it cannot even see the user).
	d.call(t, http.StatusNotFound, http.MethodGet, "/v1/users/user-1", "pk_other", nil)
}

// ledger reads the user's consent ledger as the partner sees it.
func (d *inAppDesk) ledger(t *testing.T, user string) []map[string]any {
	t.Helper()
	body := d.call(t, http.StatusOK, http.MethodGet, "/v1/users/"+user, "pk_streamly", nil).json(t)
	var out []map[string]any
	for _, e := range body["consent_ledger"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

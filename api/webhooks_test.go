package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

const (
	hookToken  = "0123456789abcdef0123456789abcdef"
	publicBase = "https://crescendo.example"
	hookPhone  = "+14155550100"
	hookEmail  = "fan@example.com"
	helpText   = "Crescendo offers. Reply STOP to stop."
)

// TwiML answers are checked against the document as the strings they are.
func init() { openapi3filter.RegisterBodyDecoder("text/xml", openapi3filter.FileBodyDecoder) }

// hookDesk is a server with the webhooks configured, one fan (phone and
// email) holding an offer delivered by SMS (smsOffer, Twilio SID "SMsent")
// and one by email (emailOffer, X-Message-Id "msg-1"), and the redeliveries
// its feedback queued.
type hookDesk struct {
	url        string
	store      *store.Store
	key        *ecdsa.PrivateKey
	now        atomic.Int64
	fan        uuid.UUID
	smsOffer   uuid.UUID
	emailOffer uuid.UUID
	doc        *openapi3.T
	router     routers.Router

	mu   sync.Mutex
	redo []store.Redelivery
}

func newHookDesk(t *testing.T) *hookDesk {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: pgtemp.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	d := &hookDesk{store: st, fan: uuid.New(), smsOffer: uuid.New(), emailOffer: uuid.New()}
	start := time.Now().UTC().Truncate(time.Second)
	d.now.Store(start.UnixNano())
	for _, err := range []error{
		st.PutPartner(ctx, store.Partner{ID: "streamly", Name: "Streamly", APIKey: "pk_streamly"}),
		st.PutPerformer(ctx, "perf", "Aurora Lane"),
		st.PutShow(ctx, store.Show{ID: "show", PerformerID: "perf", Name: "Roundhouse", StartsAt: start.AddDate(0, 1, 0),
			VenueName: "Roundhouse", VenueLat: 51.54, VenueLon: -0.15}),
		st.PutFan(ctx, store.Fan{ID: d.fan, DisplayName: "Robin", Phone: hookPhone, Email: hookEmail, TimeZone: "UTC"}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutRule(ctx, offers.Rule{ID: "r", PerformerID: "perf", ShowID: "show",
		Tiers:    []offers.Tier{{Threshold: 10, Perks: []string{"presale"}}, {Threshold: 20, Perks: []string{"presale"}}},
		Channels: []offers.Channel{offers.ChannelSMS, offers.ChannelEmail}, Lifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, status, channel, provider_id, issued_at, expires_at, delivered_at)
		VALUES ($1, $3, 'r', 1, 1, 'perf', 'show', '{presale}', 30, 'e', 0, 'delivered', 'sms', 'SMsent', $4, $5, $4),
			($2, $3, 'r', 1, 2, 'perf', 'show', '{presale}', 30, 'e', 0, 'delivered', 'email', 'msg-1', $4, $5, $4)`,
		d.smsOffer, d.emailOffer, d.fan, start, start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&d.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	feedback := store.Feedback{Store: st, Redeliver: func(_ context.Context, _ pgx.Tx, r []store.Redelivery) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.redo = append(d.redo, r...)
		return nil
	}}
	h, err := api.New(api.Config{
		Partners: st, Push: push.NewHub(),
		Webhooks: api.Webhooks{Feedback: feedback, PublicBaseURL: publicBase + "/", TwilioAuthToken: hookToken, HelpText: helpText,
			SendGridPublicKey: base64.StdEncoding.EncodeToString(der)},
		Clock:  func() time.Time { return time.Unix(0, d.now.Load()) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	d.url = srv.URL
	if d.doc, err = openapi3.NewLoader().LoadFromFile("openapi.yaml"); err != nil {
		t.Fatal(err)
	}
	if d.router, err = gorillamux.NewRouter(d.doc); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *hookDesk) clock() time.Time { return time.Unix(0, d.now.Load()) }

// twilioSignature signs the way Twilio documents it: HMAC-SHA1 with the auth
// token over the URL followed by each form name and value, in name order.
func twilioSignature(token, u string, form url.Values) string {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(u)
	for _, k := range names {
		for _, v := range form[k] {
			b.WriteString(k + v)
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// sendGridSignature signs the way SendGrid does: ECDSA P-256 over SHA-256 of
// the timestamp followed by the body, ASN.1, base64.
func sendGridSignature(t *testing.T, key *ecdsa.PrivateKey, stamp string, body []byte) string {
	t.Helper()
	h := sha256.Sum256(append([]byte(stamp), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

type hookReply struct {
	status int
	header http.Header
	body   string
}

// post sends a webhook request and checks the answer against the OpenAPI document.
func (d *hookDesk) post(t *testing.T, path, contentType string, body []byte, header map[string]string) hookReply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, d.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := hookReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		t.Fatalf("POST %s is not in the OpenAPI document: %v", path, err)
	}
	err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.status, Header: r.header, Body: io.NopCloser(strings.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Fatalf("POST %s: the %d answer %s does not match the OpenAPI document: %v", path, r.status, r.body, err)
	}
	return r
}

// twilio posts form to a Twilio webhook, signed with token over the public URL.
func (d *hookDesk) twilio(t *testing.T, path, token string, form url.Values) hookReply {
	t.Helper()
	return d.postForm(t, path, form, twilioSignature(token, publicBase+path, form))
}

func (d *hookDesk) postForm(t *testing.T, path string, form url.Values, signature string) hookReply {
	t.Helper()
	header := map[string]string{}
	if signature != "" {
		header["X-Twilio-Signature"] = signature
	}
	return d.post(t, path, "application/x-www-form-urlencoded", []byte(form.Encode()), header)
}

// sendGrid posts events to the Event Webhook signed with key at stamp.
func (d *hookDesk) sendGrid(t *testing.T, key *ecdsa.PrivateKey, stamp time.Time, events ...map[string]any) hookReply {
	t.Helper()
	body, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(stamp.Unix(), 10)
	return d.post(t, "/v1/webhooks/sendgrid/events", "application/json", body, map[string]string{
		"X-Twilio-Email-Event-Webhook-Signature": sendGridSignature(t, key, ts, body),
		"X-Twilio-Email-Event-Webhook-Timestamp": ts,
	})
}

func (d *hookDesk) want(t *testing.T, r hookReply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("answered %d %s, want %d", r.status, r.body, status)
	}
}

// unchanged fails unless no webhook has changed anything yet.
func (d *hookDesk) unchanged(t *testing.T) {
	t.Helper()
	var events, suppressions, ledger int
	var statuses []string
	err := d.store.Pool().QueryRow(t.Context(), `SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM suppressions),
			(SELECT count(*) FROM consent_ledger), ARRAY(SELECT status || COALESCE(provider_status, '') FROM offers ORDER BY tier)`).
		Scan(&events, &suppressions, &ledger, &statuses)
	if err != nil {
		t.Fatal(err)
	}
	if events+suppressions+ledger != 0 || !slices.Equal(statuses, []string{"delivered", "delivered"}) || len(d.redelivered()) != 0 {
		t.Fatalf("a refused request changed something: %d events, %d suppressions, %d ledger entries, offers %v, redeliveries %v",
			events, suppressions, ledger, statuses, d.redelivered())
	}
}

func (d *hookDesk) redelivered() []store.Redelivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.redo)
}

func (d *hookDesk) delivery(t *testing.T, id uuid.UUID) store.Delivery {
	t.Helper()
	del, err := d.store.Delivery(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return del
}

func (d *hookDesk) ledger(t *testing.T, action string) int {
	t.Helper()
	var n int
	if err := d.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM consent_ledger WHERE fan_id = $1 AND action = $2`,
		d.fan, action).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func undelivered() url.Values {
	return url.Values{"MessageSid": {"SMsent"}, "SmsSid": {"SMsent"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30003"},
		"To": {hookPhone}, "From": {"+14155550199"}, "AccountSid": {"AC0123456789abcdef0123456789abcdef"}}
}

func TestTwilioWebhooksRefuseRequestsWithoutAValidSignature(t *testing.T) {
	d := newHookDesk(t)
	status, inbound := "/v1/webhooks/twilio/status", "/v1/webhooks/twilio/inbound"
	stop := url.Values{"MessageSid": {"SMin1"}, "From": {hookPhone}, "To": {"+14155550199"}, "Body": {"STOP"}}
	tampered := undelivered()
	tampered.Set("ErrorCode", "30006")
	for name, send := range map[string]func() hookReply{
		"unsigned status":  func() hookReply { return d.postForm(t, status, undelivered(), "") },
		"unsigned inbound": func() hookReply { return d.postForm(t, inbound, stop, "") },
		"forged status":    func() hookReply { return d.twilio(t, status, "another-accounts-token", undelivered()) },
		"forged inbound":   func() hookReply { return d.twilio(t, inbound, "another-accounts-token", stop) },
		"signed for another URL": func() hookReply {
			return d.postForm(t, status, undelivered(), twilioSignature(hookToken, d.url+status, undelivered()))
		},
		"signed for the other hook": func() hookReply {
			return d.postForm(t, inbound, stop, twilioSignature(hookToken, publicBase+status, stop))
		},
		"tampered body": func() hookReply {
			return d.postForm(t, status, tampered, twilioSignature(hookToken, publicBase+status, undelivered()))
		},
		"garbage signature": func() hookReply { return d.postForm(t, status, undelivered(), "not base64 at all") },
	} {
		if r := send(); r.status != http.StatusForbidden {
			t.Errorf("%s: answered %d %s, want 403", name, r.status, r.body)
		}
	}
	d.unchanged(t)
	d.want(t, d.twilio(t, status, hookToken, undelivered()), http.StatusNoContent)
	d.want(t, d.twilio(t, inbound, hookToken, stop), http.StatusOK)
}

func TestAnUndeliveredTextReopensTheOfferForTheNextChannelOnce(t *testing.T) {
	d := newHookDesk(t)
	// Twilio repeats its callbacks: the second changes nothing.
	for range 2 {
		d.want(t, d.twilio(t, "/v1/webhooks/twilio/status", hookToken, undelivered()), http.StatusNoContent)
	}
	del := d.delivery(t, d.smsOffer)
	if del.Status != store.OfferIssued || !slices.Equal(del.Refused, []offers.Channel{offers.ChannelSMS}) {
		t.Fatalf("after undelivered: status %s, refused %v; want issued, [sms] so delivery moves to email", del.Status, del.Refused)
	}
	if got := d.redelivered(); !slices.Equal(got, []store.Redelivery{{OfferID: d.smsOffer, Round: 1, Failed: offers.ChannelSMS}}) {
		t.Fatalf("redeliveries %+v, want the SMS offer once", got)
	}
	// A delivered receipt is noted on its offer.
	if _, err := d.store.Pool().Exec(t.Context(), `UPDATE offers SET provider_id = 'SMother', channel = 'sms' WHERE id = $1`, d.emailOffer); err != nil {
		t.Fatal(err)
	}
	d.want(t, d.twilio(t, "/v1/webhooks/twilio/status", hookToken, url.Values{"MessageSid": {"SMother"}, "MessageStatus": {"delivered"}}), http.StatusNoContent)
	var got string
	if err := d.store.Pool().QueryRow(t.Context(), `SELECT provider_status FROM offers WHERE id = $1`, d.emailOffer).Scan(&got); err != nil || got != "delivered" {
		t.Fatalf("provider status %q, %v; want delivered", got, err)
	}
}

func TestInboundStopSuppressesTheNumberStartLiftsItAndHelpIsAnswered(t *testing.T) {
	d := newHookDesk(t)
	inbound := func(sid, body string, extra ...string) hookReply {
		form := url.Values{"MessageSid": {sid}, "From": {hookPhone}, "To": {"+14155550199"}, "Body": {body}}
		for i := 0; i+1 < len(extra); i += 2 {
			form.Set(extra[i], extra[i+1])
		}
		r := d.twilio(t, "/v1/webhooks/twilio/inbound", hookToken, form)
		d.want(t, r, http.StatusOK)
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/xml") {
			t.Fatalf("Content-Type %q, want TwiML (text/xml)", r.header.Get("Content-Type"))
		}
		return r
	}
	const empty = `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Response/>"
	for range 2 { // a repeat changes nothing
		if r := inbound("SMin1", "  Stop \n"); r.body != empty {
			t.Fatalf("STOP answered %q, want an empty Response", r.body)
		}
	}
	if del := d.delivery(t, d.emailOffer); !slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelSMS}) {
		t.Fatalf("after STOP: Delivery.Suppressed %v, want [sms]", del.Suppressed)
	}
	if n := d.ledger(t, "opt_out"); n != 1 {
		t.Fatalf("%d opt-outs in the ledger, want 1", n)
	}
	if r := inbound("SMin2", "help"); !strings.Contains(r.body, "<Response><Message>"+helpText+"</Message></Response>") {
		t.Fatalf("HELP answered %q, want the help text", r.body)
	}
	// Twilio's Advanced Opt-Out answered HELP itself: no second answer.
	if r := inbound("SMin3", "AIDE", "OptOutType", "HELP"); r.body != empty {
		t.Fatalf("HELP that Twilio answered got %q, want an empty Response", r.body)
	}
	inbound("SMin4", "START")
	if del := d.delivery(t, d.emailOffer); len(del.Suppressed) != 0 {
		t.Fatalf("after START: Delivery.Suppressed %v, want none", del.Suppressed)
	}
	if n := d.ledger(t, "opt_in"); n != 1 {
		t.Fatalf("%d opt-ins in the ledger, want 1", n)
	}
	// Any other text changes nothing.
	inbound("SMin5", "stop sending me these please")
	if del := d.delivery(t, d.emailOffer); len(del.Suppressed) != 0 {
		t.Fatalf("a sentence with stop in it suppressed the number")
	}
}

func TestSendGridEventWebhookChecksSignatureAndReplayWindow(t *testing.T) {
	d := newHookDesk(t)
	now := d.clock()
	event := map[string]any{"event": "bounce", "type": "bounce", "email": hookEmail, "timestamp": now.Unix(),
		"sg_event_id": "ev-1", "sg_message_id": "msg-1.filterdrecv-p3mdw1-1", "offer_id": d.emailOffer.String(), "reason": "550 no such user"}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal([]any{event})
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	signed := sendGridSignature(t, d.key, ts, body)
	raw := func(body []byte, header map[string]string) hookReply {
		return d.post(t, "/v1/webhooks/sendgrid/events", "application/json", body, header)
	}
	const sigHeader, tsHeader = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"
	for name, send := range map[string]func() hookReply{
		"unsigned":     func() hookReply { return raw(body, nil) },
		"no timestamp": func() hookReply { return raw(body, map[string]string{sigHeader: signed}) },
		"forged":       func() hookReply { return d.sendGrid(t, other, now, event) },
		"tampered body": func() hookReply {
			return raw(bytes.Replace(body, []byte("bounce"), []byte("open"), 1), map[string]string{sigHeader: signed, tsHeader: ts})
		},
		"another timestamp": func() hookReply {
			return raw(body, map[string]string{sigHeader: signed, tsHeader: strconv.FormatInt(now.Unix()+1, 10)})
		},
		"garbage signature": func() hookReply { return raw(body, map[string]string{sigHeader: "%%%", tsHeader: ts}) },
		"replayed later":    func() hookReply { return d.sendGrid(t, d.key, now.Add(-5*time.Minute-time.Second), event) },
		"from the future":   func() hookReply { return d.sendGrid(t, d.key, now.Add(5*time.Minute+time.Second), event) },
	} {
		if r := send(); r.status != http.StatusForbidden {
			t.Errorf("%s: answered %d %s, want 403", name, r.status, r.body)
		}
	}
	d.unchanged(t)
	// Inside the window, either way, it passes.
	d.want(t, raw(body, map[string]string{sigHeader: signed, tsHeader: ts}), http.StatusNoContent)
	d.want(t, d.sendGrid(t, d.key, now.Add(-5*time.Minute), event), http.StatusNoContent)
	d.want(t, d.sendGrid(t, d.key, now.Add(5*time.Minute), event), http.StatusNoContent)
	// Three deliveries of ev-1, applied once.
	if got := d.redelivered(); !slices.Equal(got, []store.Redelivery{{OfferID: d.emailOffer, Round: 1, Failed: offers.ChannelEmail}}) {
		t.Fatalf("redeliveries %+v, want the email offer once", got)
	}
	del := d.delivery(t, d.emailOffer)
	if del.Status != store.OfferIssued || !slices.Equal(del.Refused, []offers.Channel{offers.ChannelEmail}) ||
		!slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelEmail}) {
		t.Fatalf("after a bounce: status %s, refused %v, suppressed %v; want issued, [email], [email]", del.Status, del.Refused, del.Suppressed)
	}
}

func TestSendGridOptOutsSuppressTheAddressOnceEach(t *testing.T) {
	for _, kind := range []string{"dropped", "spamreport", "unsubscribe", "group_unsubscribe"} {
		t.Run(kind, func(t *testing.T) {
			d := newHookDesk(t)
			now := d.clock()
			event := map[string]any{"event": kind, "email": "Fan@Example.com", "timestamp": now.Unix(), "sg_event_id": "ev-" + kind,
				"sg_message_id": "msg-1.filter", "reason": "Bounced Address", "asm_group_id": 3}
			// An event Crescendo cannot read is skipped, not retried forever.
			d.want(t, d.sendGrid(t, d.key, now, event, event, map[string]any{"event": 42}), http.StatusNoContent)
			d.want(t, d.sendGrid(t, d.key, now, event), http.StatusNoContent)
			if del := d.delivery(t, d.smsOffer); !slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelEmail}) {
				t.Fatalf("Delivery.Suppressed %v, want [email]", del.Suppressed)
			}
			wantLedger := 1
			if kind == "dropped" {
				wantLedger = 0 // a bounced address is not the fan's choice
			}
			if n := d.ledger(t, "opt_out"); n != wantLedger {
				t.Fatalf("%d opt-outs in the ledger, want %d", n, wantLedger)
			}
		})
	}
}

func TestWebhooksNeedAPublicURLAndAnECDSAKey(t *testing.T) {
	st := &store.Store{}
	feedback := store.Feedback{Store: st}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(w api.Webhooks) error {
		_, err := api.New(api.Config{Partners: st, Push: push.NewHub(), Webhooks: w})
		return err
	}
	for name, w := range map[string]api.Webhooks{
		"no public URL":    {Feedback: feedback, TwilioAuthToken: hookToken},
		"relative URL":     {Feedback: feedback, TwilioAuthToken: hookToken, PublicBaseURL: "/hooks"},
		"URL with a query": {Feedback: feedback, TwilioAuthToken: hookToken, PublicBaseURL: "https://x.example/?a=1"},
		"key not base64":   {Feedback: feedback, SendGridPublicKey: "not a key"},
		"key not DER":      {Feedback: feedback, SendGridPublicKey: base64.StdEncoding.EncodeToString([]byte("junk"))},
		"an Ed25519 key":   {Feedback: feedback, SendGridPublicKey: base64.StdEncoding.EncodeToString(edDER)},
	} {
		if err := serve(w); err == nil {
			t.Errorf("%s: api.New accepted it", name)
		}
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})
	if err := serve(api.Webhooks{Feedback: feedback, SendGridPublicKey: string(block)}); err != nil {
		t.Errorf("a PEM ECDSA key: %v", err)
	}
}

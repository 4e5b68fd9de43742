package notifiers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/sandbox/sendgrid"
	"github.com/crescendo-hq/crescendo/store"
)

var (
	expires  = time.Date(2031, 3, 3, 20, 0, 0, 0, time.UTC)
	showTime = time.Date(2031, 3, 7, 19, 30, 0, 0, time.UTC)
)

func delivery() store.Delivery {
	return store.Delivery{
		OfferID: uuid.MustParse("6f1c2a52-8d1e-4f55-9a36-0d6b0c1d2e3f"), FanID: uuid.New(), Tier: 2,
		Perks: []string{"presale", "section:Floor A"}, ExpiresAt: expires, FanName: "Ada Lovelace",
		Email: "ada@example.com", Phone: "+14155550100", ShowName: "Roundhouse", PerformerName: "Aurora Lane",
		PresaleCode: "ROUND-7",
	}
}

func signer(t *testing.T) *offers.Signer {
	t.Helper()
	s, err := offers.NewSigner("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ruleTemplates = &offers.Templates{
	SMS:          `{{.FanName}}, {{.Performer}} tier {{.Tier}}: {{.Perks}}{{with .PresaleCode}}, code {{.}}{{end}}. {{.ShowDate}}. {{.Link}}`,
	EmailSubject: "{{.FanName}}: {{.Show}}\non {{.ShowDate}}",
	EmailText:    "Claim: {{.Link}}\nStop: {{.UnsubscribeLink}}\n",
	EmailHTML:    `<a href="{{.Link}}">Claim, {{.FanName}}</a> <a href="{{.UnsubscribeLink}}">Stop</a>`,
	PushTitle:    "{{.Performer}} wants you at {{.Show}}",
	PushBody:     "{{.Perks}} until {{.Expires}}",
	PushLink:     "streamly://offers/{{.Token}}",
}

func TestWorkerRendersTheRulesTemplates(t *testing.T) {
	sg := signer(t)
	content := store.OfferContent{Templates: ruleTemplates, ShowStartsAt: showTime}
	w := &worker{cfg: Config{Signer: sg, LinkBase: "https://crescendo.example/o/"}}
	d := delivery()
	token := sg.Token(d.OfferID, d.ExpiresAt)
	now := expires.Add(-time.Hour)
	m := w.message(d, content, store.DeliveryContext{TimeZone: "Europe/Paris"}, token, now, nil)
	link := "https://crescendo.example/o/" + token
	if want := "Ada, Aurora Lane tier 2: presale access, seats in section Floor A, code ROUND-7. Fri 7 Mar 2031. " + link; m.sms != want {
		t.Errorf("sms %q\nwant %q", m.sms, want)
	}
	if seg := offers.CountSegments(m.sms); seg.Encoding != offers.EncodingGSM7 || seg.Segments != 2 {
		t.Errorf("sms is %+v", seg)
	}

	// The email carries the unsubscribe link of the fan's address, in its
	// bodies and in the RFC 8058 headers.
	unsubToken := sg.UnsubscribeToken(d.Email)
	unsub := "https://crescendo.example/u/" + unsubToken
	if got, err := sg.VerifyUnsubscribe(unsubToken); err != nil || got != d.Email {
		t.Fatalf("the unsubscribe token names %q, %v", got, err)
	}
	if m.subject != "Ada: Roundhouse on Fri 7 Mar 2031" {
		t.Errorf("subject %q", m.subject)
	}
	if m.text != "Claim: "+link+"\nStop: "+unsub+"\n" {
		t.Errorf("text %q", m.text)
	}
	if m.html != `<a href="`+link+`">Claim, Ada</a> <a href="`+unsub+`">Stop</a>` {
		t.Errorf("html %q", m.html)
	}
	wantHeaders := map[string]string{
		"List-Unsubscribe":      "<" + unsub + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	}
	if !reflect.DeepEqual(m.headers, wantHeaders) {
		t.Errorf("headers %v, want %v", m.headers, wantHeaders)
	}

	var push map[string]any
	if err := json.Unmarshal(m.push, &push); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"offer_id": d.OfferID.String(), "title": "Aurora Lane wants you at Roundhouse",
		"body": "presale access, seats in section Floor A until Mar 3 21:00 CET", "link": link,
		"deep_link": "streamly://offers/" + token, "tier": 2.0, "presale_code": "ROUND-7",
		"expires_at": "2031-03-03T20:00:00Z", "sent_at": now.Format(time.RFC3339Nano),
	} {
		if !reflect.DeepEqual(push[k], want) {
			t.Errorf("push %s = %v, want %v", k, push[k], want)
		}
	}
	if len(m.refused) != 0 {
		t.Errorf("refused %v", m.refused)
	}
}

func TestTheBuiltInMessagesWithoutRuleTemplates(t *testing.T) {
	sg := signer(t)
	w := &worker{cfg: Config{Signer: sg, LinkBase: "http://127.0.0.1:8080/o/"}}
	d := delivery()
	m := w.message(d, store.OfferContent{}, store.DeliveryContext{TimeZone: "UTC"}, "TOKEN", expires.Add(-time.Hour), nil)
	if want := "Aurora Lane: presale access, seats in section Floor A for Roundhouse (code ROUND-7). Ends Mar 3 20:00 UTC http://127.0.0.1:8080/o/TOKEN"; m.sms != want {
		t.Errorf("sms %q\nwant %q", m.sms, want)
	}
	unsub := "http://127.0.0.1:8080/u/" + sg.UnsubscribeToken(d.Email)
	if !strings.Contains(m.text, "No more offers by email: "+unsub) || !strings.Contains(m.html, `<a href="`+unsub+`">`) {
		t.Errorf("the built-in email has no unsubscribe link:\n%s\n%s", m.text, m.html)
	}
	if m.headers["List-Unsubscribe"] != "<"+unsub+">" {
		t.Errorf("headers %v", m.headers)
	}
	// A fan without an address gets no unsubscribe link.
	d.Email = ""
	if m := w.message(d, store.OfferContent{}, store.DeliveryContext{}, "TOKEN", expires.Add(-time.Hour), nil); m.headers != nil || strings.Contains(m.text, "/u/") {
		t.Errorf("headers %v for a fan without email", m.headers)
	}
}

func TestATextOverItsLimitRefusesOnlyTheSMSChannel(t *testing.T) {
	d := delivery()
	d.PresaleCode = strings.Repeat("C", 64) // codes are never cut
	c := store.OfferContent{Templates: &offers.Templates{SMS: "{{.PresaleCode}} {{.Link}}", SMSMaxSegments: 1}}
	m := renderOffer(d, c, links{offer: "https://c.example/o/" + strings.Repeat("t", 100), unsubscribe: "https://c.example/u/x"}, nil, expires, nil)
	err := m.refusal(offers.ChannelSMS)
	if !errors.Is(err, offers.ErrTooManySegments) || !isPermanent(err) {
		t.Fatalf("sms refusal %v (permanent %v)", err, isPermanent(err))
	}
	if m.refusal(offers.ChannelEmail) != nil || m.refusal(offers.ChannelPush) != nil || m.text == "" {
		t.Fatalf("other channels refused: %v", m.refused)
	}
}

func TestUnsubscribeBase(t *testing.T) {
	for base, want := range map[string]string{
		"https://crescendo.example/o/":        "https://crescendo.example/u/",
		"https://crescendo.example/offers/o/": "https://crescendo.example/offers/u/",
		"http://127.0.0.1:8080/o":             "http://127.0.0.1:8080/u/",
		"/o/":                                 "",
		"":                                    "",
	} {
		if got := unsubscribeBase(base); got != want {
			t.Errorf("unsubscribeBase(%q) = %q, want %q", base, got, want)
		}
	}
}

// The email goes through sendgrid-go to the SendGrid sandbox with its
// List-Unsubscribe headers, which SendGrid's v3 Mail Send takes in headers.
func TestTheUnsubscribeHeadersReachSendGrid(t *testing.T) {
	sb, err := sendgrid.New(sendgrid.Config{APIKey: "SG.test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	defer srv.Close()
	sender, err := email.New(email.Config{APIKey: "SG.test", FromEmail: "offers@crescendo.example", BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	sg := signer(t)
	w := &worker{cfg: Config{Signer: sg, LinkBase: "https://crescendo.example/o/"}}
	d := delivery()
	m := w.message(d, store.OfferContent{Templates: ruleTemplates, ShowStartsAt: showTime}, store.DeliveryContext{TimeZone: "UTC"}, "TOKEN", expires.Add(-time.Hour), nil)
	if _, err := sender.Send(t.Context(), email.Message{ToEmail: d.Email, ToName: d.FanName, Subject: m.subject,
		Text: m.text, HTML: m.html, Headers: m.headers, CustomArgs: map[string]string{"offer_id": d.OfferID.String()}}); err != nil {
		t.Fatal(err)
	}
	got := sb.Messages()
	if len(got) != 1 {
		t.Fatalf("the sandbox got %d messages", len(got))
	}
	unsub := "https://crescendo.example/u/" + sg.UnsubscribeToken(d.Email)
	want := map[string]string{"List-Unsubscribe": "<" + unsub + ">", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
	if !reflect.DeepEqual(got[0].Mail.Headers, want) {
		t.Fatalf("headers at SendGrid %v, want %v", got[0].Mail.Headers, want)
	}
	if c := got[0].Mail.Content; len(c) != 2 || !strings.Contains(c[0].Value, unsub) || !strings.Contains(c[1].Value, unsub) {
		t.Fatalf("content at SendGrid %+v", c)
	}
}

// A delivery renders only the channels it may try.
func TestOnlyTheChannelsToTryAreRendered(t *testing.T) {
	w := &worker{cfg: Config{Signer: signer(t), LinkBase: "https://crescendo.example/o/"}}
	d := delivery()
	m := w.message(d, store.OfferContent{Templates: ruleTemplates, ShowStartsAt: showTime}, store.DeliveryContext{TimeZone: "UTC"},
		"TOKEN", expires.Add(-time.Hour), []offers.Channel{offers.ChannelSMS})
	if m.sms == "" || m.subject != "" || m.html != "" || m.push != nil || len(m.refused) != 0 {
		t.Fatalf("rendering for sms only: sms %q, subject %q, html %q, push %s, refused %v", m.sms, m.subject, m.html, m.push, m.refused)
	}
	m = w.message(d, store.OfferContent{Templates: ruleTemplates, ShowStartsAt: showTime}, store.DeliveryContext{TimeZone: "UTC"},
		"TOKEN", expires.Add(-time.Hour), []offers.Channel{offers.ChannelPush, offers.ChannelEmail})
	if m.sms != "" || m.subject == "" || m.html == "" || m.push == nil {
		t.Fatalf("rendering for push and email: sms %q, subject %q, html %q, push %s", m.sms, m.subject, m.html, m.push)
	}
}

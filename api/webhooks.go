package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	"github.com/twilio/twilio-go/client"

	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/store"
)

// Feedback applies what Twilio and SendGrid report (F18); store.Feedback is one.
type Feedback interface {
	ApplySMSReceipt(ctx context.Context, r store.SMSReceipt, at time.Time) (bool, error)
	ApplyInboundSMS(ctx context.Context, in store.InboundSMS, at time.Time) (bool, error)
	ApplyEmailEvent(ctx context.Context, e store.EmailEvent, at time.Time) (bool, error)
}

// Webhooks configures the providers' webhooks (F18): Twilio's status
// callbacks and inbound messages, SendGrid's Event Webhook. Every request must
// carry the provider's signature; one without a valid signature is answered
// 403 and changes nothing.
type Webhooks struct {
	// Feedback applies the events; nil serves no webhooks.
	Feedback Feedback
	// PublicBaseURL is the origin (and path prefix, if a proxy adds one)
	// Twilio calls, e.g. "https://crescendo.example": Twilio signs the
	// whole URL it called, so it must be the one configured at Twilio.
	PublicBaseURL string
	// TwilioAuthToken verifies X-Twilio-Signature; empty serves no Twilio webhooks.
	TwilioAuthToken string
	// HelpText answers a fan's HELP; empty is DefaultHelpText.
	HelpText string
	// SendGridPublicKey is the Event Webhook's verification key, base64 DER
	// as SendGrid shows it (PEM is accepted too); empty serves no SendGrid webhook.
	SendGridPublicKey string
	// ReplayWindow is how far a SendGrid signature's timestamp may be from
	// now, either way; 0 is DefaultReplayWindow.
	ReplayWindow time.Duration
}

// DefaultReplayWindow bounds the age of a signed SendGrid request: a captured
// request replayed later is refused.
const DefaultReplayWindow = 5 * time.Minute

// DefaultHelpText answers an inbound HELP (or INFO).
const DefaultHelpText = "Crescendo: ticket offers for artists you listen to. Reply STOP to stop these texts, START to get them again. Msg&data rates may apply."

// Bounds on webhook bodies: Twilio posts a short form, SendGrid batches events.
const (
	maxTwilioBody   = 64 << 10
	maxSendGridBody = 16 << 20
)

// webhooks serves the webhooks with their checked configuration.
type webhooks struct {
	*server
	Webhooks
	twilio   client.RequestValidator
	sendgrid *ecdsa.PublicKey
}

// routeWebhooks serves the providers' webhooks that are configured.
func (s *server) routeWebhooks(mux *http.ServeMux) error {
	c := s.cfg.Webhooks
	if c.Feedback == nil {
		return nil
	}
	wh := &webhooks{server: s, Webhooks: c}
	if wh.ReplayWindow <= 0 {
		wh.ReplayWindow = DefaultReplayWindow
	}
	if wh.HelpText == "" {
		wh.HelpText = DefaultHelpText
	}
	if c.TwilioAuthToken != "" {
		base, err := publicBase(c.PublicBaseURL)
		if err != nil {
			return err
		}
		wh.PublicBaseURL = base
		wh.twilio = client.NewRequestValidator(c.TwilioAuthToken)
		mux.HandleFunc("POST /v1/webhooks/twilio/status", wh.twilioHook(wh.smsStatus))
		mux.HandleFunc("POST /v1/webhooks/twilio/inbound", wh.twilioHook(wh.smsInbound))
	}
	if c.SendGridPublicKey != "" {
		key, err := sendGridKey(c.SendGridPublicKey)
		if err != nil {
			return err
		}
		wh.sendgrid = key
		mux.HandleFunc("POST /v1/webhooks/sendgrid/events", wh.emailEvents)
	}
	return nil
}

// publicBase checks the public base URL Twilio's signatures are made over.
func publicBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("api: Webhooks.PublicBaseURL %q must be the http(s) URL Twilio calls, without query", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// sendGridKey parses the Event Webhook's verification key with sendgrid-go,
// after checking it is an ECDSA key (the helper panics on any other kind).
func sendGridKey(raw string) (*ecdsa.PublicKey, error) {
	raw = strings.TrimSpace(raw)
	if block, _ := pem.Decode([]byte(raw)); block != nil {
		raw = base64.StdEncoding.EncodeToString(block.Bytes)
	}
	der, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("api: decoding Webhooks.SendGridPublicKey: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("api: parsing Webhooks.SendGridPublicKey: %w", err)
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("api: Webhooks.SendGridPublicKey is a %T, not an ECDSA key", pub)
	}
	return eventwebhook.ConvertPublicKeyBase64ToECDSA(raw)
}

// forbid answers a request whose signature does not verify.
func forbid(w http.ResponseWriter, detail string) {
	writeProblem(w, http.StatusForbidden, detail)
}

// readBody reads a webhook body of at most limit bytes, answering 413 past it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", limit))
		return nil, false
	case err != nil:
		writeProblem(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

// twilioHook verifies X-Twilio-Signature over the URL Twilio called (the
// public base URL and the request's path and query) and the form it posted,
// with twilio-go's request validator, before h sees the form.
func (wh *webhooks) twilioHook(h func(http.ResponseWriter, *http.Request, url.Values)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := readBody(w, r, maxTwilioBody)
		if !ok {
			return
		}
		signature := r.Header.Get("X-Twilio-Signature")
		if signature == "" {
			forbid(w, "the request carries no X-Twilio-Signature")
			return
		}
		if !wh.twilio.ValidateBody(wh.PublicBaseURL+r.URL.RequestURI(), body, signature) {
			forbid(w, "X-Twilio-Signature does not verify")
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "decoding the form: "+err.Error())
			return
		}
		h(w, r, form)
	}
}

// formValue returns the first non-empty value of the form's keys: Twilio still
// sends the older Sms* names next to the Message* ones.
func formValue(form url.Values, keys ...string) string {
	for _, k := range keys {
		if v := form.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// smsStatus applies a Twilio status callback: POST /v1/webhooks/twilio/status.
func (wh *webhooks) smsStatus(w http.ResponseWriter, r *http.Request, form url.Values) {
	receipt := store.SMSReceipt{
		MessageSID: formValue(form, "MessageSid", "SmsSid"),
		Status:     formValue(form, "MessageStatus", "SmsStatus"),
		To:         form.Get("To"),
	}
	if receipt.MessageSID == "" || receipt.Status == "" {
		writeProblem(w, http.StatusBadRequest, "MessageSid and MessageStatus are required")
		return
	}
	if code := form.Get("ErrorCode"); code != "" {
		n, err := strconv.Atoi(code)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "ErrorCode is not a number")
			return
		}
		receipt.ErrorCode = n
	}
	applied, err := wh.Feedback.ApplySMSReceipt(r.Context(), receipt, wh.cfg.Clock())
	if wh.settled(w, r, "Twilio status callback", applied, err,
		slog.String("message_sid", receipt.MessageSID), slog.String("status", receipt.Status)) {
		w.WriteHeader(http.StatusNoContent)
	}
}

// settled logs an event that was applied (or was a repeat), or answers 500
// for one that could not be; it reports whether the handler goes on.
func (wh *webhooks) settled(w http.ResponseWriter, r *http.Request, what string, applied bool, err error, attrs ...slog.Attr) bool {
	if err != nil {
		wh.logger.LogAttrs(r.Context(), slog.LevelError, "applying "+what, append(attrs, slog.Any("error", err))...)
		writeProblem(w, http.StatusInternalServerError, "")
		return false
	}
	wh.logger.LogAttrs(r.Context(), slog.LevelDebug, what, append(attrs, slog.Bool("applied", applied))...)
	return true
}

// smsInbound applies a text a fan sent and answers it with TwiML:
// POST /v1/webhooks/twilio/inbound. STOP and START change the number's
// suppression; HELP is answered with the help text unless Twilio's Advanced
// Opt-Out (OptOutType) answered it already.
func (wh *webhooks) smsInbound(w http.ResponseWriter, r *http.Request, form url.Values) {
	in := store.InboundSMS{MessageSID: formValue(form, "MessageSid", "SmsMessageSid", "SmsSid"), From: form.Get("From"), Body: form.Get("Body")}
	if in.MessageSID == "" || in.From == "" {
		writeProblem(w, http.StatusBadRequest, "MessageSid and From are required")
		return
	}
	optOutType := form.Get("OptOutType")
	keyword := sms.KeywordOf(in.Body, optOutType)
	switch keyword {
	case sms.KeywordStop:
		in.Change = store.OptOut
	case sms.KeywordStart:
		in.Change = store.OptIn
	}
	applied, err := wh.Feedback.ApplyInboundSMS(r.Context(), in, wh.cfg.Clock())
	if !wh.settled(w, r, "inbound SMS", applied, err, slog.String("message_sid", in.MessageSID), slog.String("keyword", string(keyword))) {
		return
	}
	reply := ""
	if keyword == sms.KeywordHelp && optOutType == "" {
		reply = wh.HelpText
	}
	writeTwiML(w, reply)
}

// writeTwiML answers Twilio with a message to send back, or with nothing.
func writeTwiML(w http.ResponseWriter, message string) {
	var b strings.Builder
	b.WriteString(xml.Header)
	if message == "" {
		b.WriteString("<Response/>")
	} else {
		b.WriteString("<Response><Message>")
		_ = xml.EscapeText(&b, []byte(message)) // a strings.Builder does not fail
		b.WriteString("</Message></Response>")
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, b.String())
}

// sendGridEvent is the part of an Event Webhook event Crescendo reads; custom
// arguments arrive as top-level members, offer_id among them.
type sendGridEvent struct {
	Email      string `json:"email"`
	Timestamp  int64  `json:"timestamp"`
	Event      string `json:"event"`
	EventID    string `json:"sg_event_id"`
	MessageID  string `json:"sg_message_id"`
	Type       string `json:"type"`
	Reason     string `json:"reason"`
	Status     string `json:"status"`
	ASMGroupID int    `json:"asm_group_id"`
	OfferID    string `json:"offer_id"`
}

// emailEvents applies a batch of SendGrid events: POST
// /v1/webhooks/sendgrid/events. The ECDSA signature covers the timestamp
// header and the body; a timestamp outside the replay window is refused like
// a bad signature. An event that cannot be read is logged and skipped, not
// retried; a failure to apply one answers 500, and SendGrid's retry of the
// batch applies only what the first try did not.
func (wh *webhooks) emailEvents(w http.ResponseWriter, r *http.Request) {
	signature := r.Header.Get(eventwebhook.VerificationHTTPHeader)
	stamp := r.Header.Get(eventwebhook.TimestampHTTPHeader)
	if signature == "" || stamp == "" {
		forbid(w, "the request carries no Event Webhook signature and timestamp")
		return
	}
	now := wh.cfg.Clock()
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		forbid(w, "the Event Webhook timestamp is not Unix seconds")
		return
	}
	if skew := now.Sub(time.Unix(secs, 0)); skew > wh.ReplayWindow || skew < -wh.ReplayWindow {
		forbid(w, "the Event Webhook timestamp is outside the replay window")
		return
	}
	body, ok := readBody(w, r, maxSendGridBody)
	if !ok {
		return
	}
	if valid, err := eventwebhook.VerifySignature(wh.sendgrid, body, signature, stamp); err != nil || !valid {
		forbid(w, "the Event Webhook signature does not verify")
		return
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		writeProblem(w, http.StatusBadRequest, "decoding the events: "+err.Error())
		return
	}
	for i, raw := range batch {
		var e sendGridEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			wh.logger.WarnContext(r.Context(), "skipping an unreadable SendGrid event", slog.Int("index", i), slog.Any("error", err))
			continue
		}
		ev := store.EmailEvent{EventID: e.EventID, Event: e.Event, Email: e.Email, Type: e.Type, Reason: e.Reason, Status: e.Status,
			ASMGroupID: e.ASMGroupID, At: now}
		if e.Timestamp > 0 {
			ev.At = time.Unix(e.Timestamp, 0)
		}
		// sg_message_id is the X-Message-Id the send answered, a dot, and the
		// filter that handled it.
		ev.MessageID, _, _ = strings.Cut(e.MessageID, ".")
		if id, err := uuid.Parse(e.OfferID); err == nil {
			ev.OfferID = id
		}
		applied, err := wh.Feedback.ApplyEmailEvent(r.Context(), ev, now)
		if !wh.settled(w, r, "SendGrid event", applied, err, slog.String("sg_event_id", e.EventID), slog.String("event", e.Event)) {
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

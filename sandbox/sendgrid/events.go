package sendgrid

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
)

// The Event Webhook: SendGrid posts what happened to the mail it accepted
// (delivered, bounce, dropped, spamreport, unsubscribe, open, click, …) to the
// account's webhook, in batches, signed with the account's ECDSA key. The
// sandbox posts events when a test or the demo asks, never by itself.

// Event returns an Event Webhook event about a message the sandbox accepted,
// as SendGrid writes one: its first recipient, its sg_message_id, a fresh
// sg_event_id, the sandbox's time, and the mail's custom_args as top-level
// members; extra members (reason, type, asm_group_id, …) are added last.
func (s *Server) Event(messageID, event string, extra map[string]any) (map[string]any, error) {
	s.mu.Lock()
	var rec *activityRecord
	for i := range s.activity {
		if strings.HasPrefix(s.activity[i].msgID, messageID+".") {
			rec = &s.activity[i]
			break
		}
	}
	var e map[string]any
	if rec != nil {
		e = map[string]any{}
		for k, v := range rec.uniqueArgs {
			e[k] = v
		}
		maps.Copy(e, map[string]any{
			"email": rec.toEmail, "event": event, "timestamp": s.cfg.Clock().Unix(), "sg_message_id": rec.msgID,
			"sg_event_id": newEventID(), "smtp-id": "<" + messageID + "@sandbox.sendgrid.net>",
		})
		maps.Copy(e, extra)
	}
	s.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("making a %s event: the sandbox accepted no message %s", event, messageID)
	}
	return e, nil
}

// PostEvents posts a batch of events to the webhook u as SendGrid's signed
// Event Webhook does: the JSON array followed by CRLF, with
// X-Twilio-Email-Event-Webhook-Timestamp (the sandbox's time, Unix seconds)
// and X-Twilio-Email-Event-Webhook-Signature, the base64 ASN.1 ECDSA
// signature with key of the SHA-256 of the timestamp followed by the body.
// It returns the status code the webhook answered with.
func (s *Server) PostEvents(ctx context.Context, c *http.Client, u string, key *ecdsa.PrivateKey, events ...map[string]any) (int, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return 0, fmt.Errorf("encoding events: %w", err)
	}
	body = append(body, '\r', '\n')
	stamp := strconv.FormatInt(s.cfg.Clock().Unix(), 10)
	digest := sha256.Sum256(append([]byte(stamp), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return 0, fmt.Errorf("signing events: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("posting events: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "SendGrid Event API")
	req.Header.Set("X-Twilio-Email-Event-Webhook-Timestamp", stamp)
	req.Header.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("posting events: %w", err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// newEventID returns an id shaped like SendGrid's sg_event_id.
func newEventID() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Webhooks Twilio calls on the account's side: status callbacks about the
// messages it accepted and the texts people send to the account's numbers,
// each signed with X-Twilio-Signature. The sandbox posts them when a test or
// the demo asks, never by itself.

// Opt-out and opt-in keywords of Twilio's default handling: a STOP stops the
// sender's messages to that number (error 21610) until a START.
var (
	stopWords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
	startWords = []string{"START", "UNSTOP", "YES"}
)

// maxWebhookAnswer bounds what the sandbox reads of a webhook's answer.
const maxWebhookAnswer = 64 << 10

// Signature returns the X-Twilio-Signature Twilio sends with a POST of form
// to u: the base64 HMAC-SHA1, keyed with the auth token, of u followed by each
// parameter's name and value, in name order.
func (s *Server) Signature(u string, form url.Values) string {
	var b strings.Builder
	b.WriteString(u)
	for _, k := range slices.Sorted(maps.Keys(form)) {
		for _, v := range slices.Sorted(slices.Values(form[k])) {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(s.cfg.AuthToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Report moves an accepted message to status (sent, delivered, undelivered,
// failed, …) with errorCode when it is not 0, and posts Twilio's status
// callback to the message's StatusCallback, or to fallback when it has none.
// It returns the status code the callback was answered with.
func (s *Server) Report(ctx context.Context, c *http.Client, sid, status string, errorCode int, fallback string) (int, error) {
	s.mu.Lock()
	i := slices.IndexFunc(s.messages, func(m Message) bool { return m.SID == sid })
	var m Message
	if i >= 0 {
		s.messages[i].Status = status
		m = s.messages[i]
	}
	s.mu.Unlock()
	if i < 0 {
		return 0, fmt.Errorf("reporting on message %s: the sandbox accepted no such message", sid)
	}
	target := m.Form.Get("StatusCallback")
	if target == "" {
		target = fallback
	}
	if target == "" {
		return 0, fmt.Errorf("reporting on message %s: it has no StatusCallback and no fallback was given", sid)
	}
	form := url.Values{
		"MessageSid": {m.SID}, "SmsSid": {m.SID}, "AccountSid": {m.AccountSID}, "To": {m.To},
		"MessageStatus": {status}, "SmsStatus": {status}, "ApiVersion": {APIVersion},
	}
	if m.From != "" {
		form.Set("From", m.From)
	}
	if m.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if errorCode != 0 {
		form.Set("ErrorCode", strconv.Itoa(errorCode))
	}
	code, _, err := s.post(ctx, c, target, form)
	if err != nil {
		return 0, fmt.Errorf("posting the status callback of %s: %w", sid, err)
	}
	return code, nil
}

// Reply posts a text from the number from to the account's number to, to
// the incoming-message webhook u, as Twilio does, and returns the answer's
// status code and body (TwiML). Like Twilio's default opt-out handling, a
// STOP keyword opts from out (later messages to it fail with 21610) and a
// START keyword opts it back in.
func (s *Server) Reply(ctx context.Context, c *http.Client, u, from, to, body string) (int, string, error) {
	sid := "SM" + randomHex()
	form := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid}, "AccountSid": {s.cfg.AccountSID},
		"From": {from}, "To": {to}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {strconv.Itoa(segments(body))},
		"ApiVersion": {APIVersion},
	}
	word := strings.ToUpper(strings.TrimSpace(body))
	s.mu.Lock()
	switch {
	case slices.Contains(stopWords, word):
		s.optedOut[from] = true
	case slices.Contains(startWords, word):
		delete(s.optedOut, from)
	}
	s.mu.Unlock()
	code, answer, err := s.post(ctx, c, u, form)
	if err != nil {
		return 0, "", fmt.Errorf("posting an incoming message: %w", err)
	}
	return code, answer, nil
}

// post sends a signed webhook request and returns the answer.
func (s *Server) post(ctx context.Context, c *http.Client, u string, form url.Values) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", formContentType)
	req.Header.Set("X-Twilio-Signature", s.Signature(u, form))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWebhookAnswer))
	if err != nil {
		return 0, "", fmt.Errorf("reading the webhook's answer: %w", err)
	}
	return resp.StatusCode, string(body), nil
}

package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"time"

	sgsandbox "github.com/crescendo-hq/crescendo/sandbox/sendgrid"
	twsandbox "github.com/crescendo-hq/crescendo/sandbox/twilio"
)

// Sandboxes are local servers that answer like Twilio's and SendGrid's APIs.
type Sandboxes struct {
	Twilio      *twsandbox.Server
	SendGrid    *sgsandbox.Server
	TwilioURL   string
	SendGridURL string
	TwilioSID   string
	TwilioToken string
	SendGridKey string
	servers     []*http.Server
}

// StartSandboxes starts both sandboxes on loopback ports chosen by the system.
func StartSandboxes() (*Sandboxes, error) {
	sb := &Sandboxes{
		TwilioSID:   "AC" + randomHex(16),
		TwilioToken: randomHex(16),
		SendGridKey: "SG." + randomHex(24),
	}
	var err error
	if sb.Twilio, err = twsandbox.New(twsandbox.Config{AccountSID: sb.TwilioSID, AuthToken: sb.TwilioToken}); err != nil {
		return nil, fmt.Errorf("creating Twilio sandbox: %w", err)
	}
	if sb.SendGrid, err = sgsandbox.New(sgsandbox.Config{APIKey: sb.SendGridKey}); err != nil {
		return nil, fmt.Errorf("creating SendGrid sandbox: %w", err)
	}
	if sb.TwilioURL, err = sb.serve(sb.Twilio); err != nil {
		return nil, err
	}
	if sb.SendGridURL, err = sb.serve(sb.SendGrid); err != nil {
		sb.Close()
		return nil, err
	}
	return sb, nil
}

func (sb *Sandboxes) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening for sandbox: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	sb.servers = append(sb.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err) // a sandbox that stops serving makes the demo meaningless
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the sandboxes.
func (sb *Sandboxes) Close() {
	for _, s := range sb.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
		// Shutdown leaves connections it found between requests but not yet
		// idle; a keep-alive client would hold them, and their goroutines, open.
		_ = s.Close()
	}
}

// OutboxSMS is one text the Twilio sandbox accepted.
type OutboxSMS struct {
	SID, To, From, Body, ValidityPeriod string
}

// OutboxEmail is one email the SendGrid sandbox accepted.
type OutboxEmail struct {
	ID, To, Subject string
	CustomArgs      map[string]string
}

// Outbox is what the sandboxes received, served at GET /dev/outbox.
type Outbox struct {
	SMS   []OutboxSMS   `json:"sms"`
	Email []OutboxEmail `json:"email"`
}

// Outbox returns what the sandboxes received so far.
func (sb *Sandboxes) Outbox() Outbox {
	var out Outbox
	for _, m := range sb.Twilio.Messages() {
		out.SMS = append(out.SMS, OutboxSMS{SID: m.SID, To: m.To, From: m.From, Body: m.Body, ValidityPeriod: m.Form.Get("ValidityPeriod")})
	}
	for _, m := range sb.SendGrid.Messages() {
		e := OutboxEmail{ID: m.ID, Subject: m.Mail.Subject, CustomArgs: maps.Clone(m.Mail.CustomArgs)}
		if len(m.Mail.Personalizations) > 0 {
			p := m.Mail.Personalizations[0]
			if len(p.To) > 0 {
				e.To = p.To[0].Email
			}
			if e.CustomArgs == nil {
				e.CustomArgs = map[string]string{}
			}
			maps.Copy(e.CustomArgs, p.CustomArgs)
		}
		out.Email = append(out.Email, e)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

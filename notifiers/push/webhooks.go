package push

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

// Webhook headers: the delivery's id (the same on every retry: receivers drop
// repeats by it), the attempt number, when it was signed (Unix seconds) and
// the signature, "v1=" and the lower-case hex HMAC-SHA256, keyed with the
// signing secret, of the timestamp, a dot, and the body.
const (
	HeaderDelivery  = "Crescendo-Delivery"
	HeaderAttempt   = "Crescendo-Attempt"
	HeaderTimestamp = "Crescendo-Timestamp"
	HeaderSignature = "Crescendo-Signature"
)

// secretPrefix marks signing secrets, so that one found somewhere is recognized.
const secretPrefix = "whsec_"

// ErrInvalidWebhookURL is wrapped by RegisterWebhook's error for a URL it
// does not take, a *WebhookURLError.
var ErrInvalidWebhookURL = errors.New("invalid webhook URL")

// WebhookURLError says why RegisterWebhook does not take a URL.
type WebhookURLError struct{ Reason string }

// Error says what is wrong with the URL.
func (e *WebhookURLError) Error() string { return "invalid webhook URL: " + e.Reason }

// Unwrap makes the error match ErrInvalidWebhookURL.
func (e *WebhookURLError) Unwrap() error { return ErrInvalidWebhookURL }

// Webhook is a partner's webhook registration. Secret is set only in what
// RegisterWebhook returns: it is shown once.
type Webhook struct {
	URL       string
	Secret    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RegisterWebhook registers the partner's webhook, or replaces its URL, with
// a new signing secret, and reports whether it was created. Deliveries still
// pending go to the new URL, signed with the new secret.
func (h *Hub) RegisterWebhook(ctx context.Context, partnerID, rawURL string) (Webhook, bool, error) {
	if h.store == nil {
		return Webhook{}, false, ErrNotDurable
	}
	if err := checkWebhookURL(rawURL, h.cfg.AllowPrivateWebhooks); err != nil {
		return Webhook{}, false, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Webhook{}, false, fmt.Errorf("generating webhook secret: %w", err)
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sealed, err := h.seal(partnerID, secret)
	if err != nil {
		return Webhook{}, false, err
	}
	w, created, err := h.store.PutPartnerWebhook(ctx, store.PartnerWebhook{PartnerID: partnerID, URL: rawURL, Secret: sealed})
	if err != nil {
		return Webhook{}, false, err
	}
	return Webhook{URL: w.URL, Secret: secret, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}, created, nil
}

// Webhook returns the partner's webhook registration, without its secret;
// store.ErrNotFound when it has none.
func (h *Hub) Webhook(ctx context.Context, partnerID string) (Webhook, error) {
	if h.store == nil {
		return Webhook{}, ErrNotDurable
	}
	w, err := h.store.PartnerWebhook(ctx, partnerID)
	if err != nil {
		return Webhook{}, err
	}
	return Webhook{URL: w.URL, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}, nil
}

// DeleteWebhook removes the partner's webhook (store.ErrNotFound when it has
// none); deliveries still pending to it fail.
func (h *Hub) DeleteWebhook(ctx context.Context, partnerID string) error {
	if h.store == nil {
		return ErrNotDurable
	}
	return h.store.DeletePartnerWebhook(ctx, partnerID)
}

func checkWebhookURL(raw string, allowPrivate bool) error {
	invalid := func(reason string) error { return &WebhookURLError{Reason: reason} }
	if len(raw) > 2048 {
		return invalid("longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs():
		return invalid("not an absolute URL")
	case u.Scheme != "https":
		return invalid("not an https URL")
	case u.Hostname() == "":
		return invalid("no host")
	case u.User != nil:
		return invalid("credentials belong in the signature, not the URL")
	case u.Fragment != "":
		return invalid("a fragment is never sent")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !allowPrivate && !public(ip) {
		return invalid("not a public address")
	}
	return nil
}

// sealing binds a sealed secret to its partner: it cannot be moved to another.
func sealingData(partnerID string) []byte {
	return []byte("crescendo push webhook secret\x00" + partnerID)
}

func (h *Hub) seal(partnerID, secret string) ([]byte, error) {
	nonce := make([]byte, h.sealer.NonceSize(), h.sealer.NonceSize()+len(secret)+h.sealer.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing webhook secret: %w", err)
	}
	return h.sealer.Seal(nonce, nonce, []byte(secret), sealingData(partnerID)), nil
}

func (h *Hub) unseal(partnerID string, sealed []byte) ([]byte, error) {
	n := h.sealer.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("opening webhook secret: too short")
	}
	secret, err := h.sealer.Open(nil, sealed[:n], sealed[n:], sealingData(partnerID))
	if err != nil {
		return nil, fmt.Errorf("opening webhook secret (was SecretKey changed?): %w", err)
	}
	return secret, nil
}

// sign returns the signature header value of body signed at ts with secret.
func sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// WebhookAttempt is one recorded attempt to POST a push to a webhook.
type WebhookAttempt struct {
	DeliveryID int64
	Seq        int64
	PartnerID  string
	Attempt    int
	// State is what the delivery is now: store.PushWebhookDelivered,
	// store.PushWebhookFailed, or store.PushWebhookPending (retried after RetryIn).
	State   string
	RetryIn time.Duration
	Status  int // the HTTP status; 0 without an answer
	Error   string
	// Recorded is false when another replica had taken the delivery over.
	Recorded bool
}

// webhookBody is what a webhook receives. Every field but the push's is the
// same on each retry, so the signature changes only with the timestamp.
type webhookBody struct {
	ID            string          `json:"id"`
	Seq           int64           `json:"seq"`
	Event         string          `json:"event"`
	PartnerUserID string          `json:"partner_user_id"`
	OfferID       string          `json:"offer_id,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	Data          json.RawMessage `json:"data"`
}

// sendWebhooks sends due webhook deliveries until ctx ends, up to
// WebhookWorkers at a time: those queued on any replica (woken by the
// announcement) and retries as they fall due. A slow receiver holds one
// worker, not the others.
func (h *Hub) sendWebhooks(ctx context.Context) {
	// However quiet, look again now and then: a missed announcement costs at most this.
	const idle = 30 * time.Second
	// An attempt's lease outlasts its POST and the recording of its outcome.
	lease := 2*h.cfg.WebhookTimeout + 10*time.Second
	busy := make(chan struct{}, h.cfg.WebhookWorkers)
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	for {
		next := idle
		var err error
		if free := cap(busy) - len(busy); free > 0 {
			var ds []store.PushWebhookDelivery
			ds, err = h.store.ClaimPushWebhookDeliveries(ctx, free, lease)
			for _, d := range ds {
				busy <- struct{}{}
				inFlight.Go(func() {
					defer func() {
						<-busy
						h.poke() // a worker is free
					}()
					h.attempt(ctx, d)
				})
			}
			if err == nil && len(ds) == free {
				continue // there may be more due
			}
			if err == nil {
				var due time.Duration
				var pending bool
				if due, pending, err = h.store.NextPushWebhookDue(ctx); err == nil && pending {
					next = min(max(due, 0), idle)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.logger.WarnContext(ctx, "sending webhooks", slog.Any("error", err))
			next = time.Second
		}
		if next > 0 && !wait(ctx, next, h.pokeWebhooks) {
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (h *Hub) attempt(ctx context.Context, d store.PushWebhookDelivery) {
	o := h.post(ctx, d)
	if o.State == store.PushWebhookPending && d.Attempt >= h.cfg.WebhookMaxAttempts {
		o.State, o.Error = store.PushWebhookFailed, fmt.Sprintf("gave up after %d attempts: %s", d.Attempt, o.Error)
	}
	// The outcome is recorded even when shutdown has begun: it happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	recorded, err := h.store.FinishPushWebhookDelivery(rctx, d.ID, d.Attempt, o)
	if err != nil {
		// The lease runs out and another attempt follows.
		h.logger.ErrorContext(rctx, "recording webhook attempt", slog.Int64("delivery", d.ID), slog.Any("error", err))
	}
	attrs := []any{slog.Int64("delivery", d.ID), slog.Int64("seq", d.Push.Seq), slog.String("partner_id", d.PartnerID),
		slog.Int("attempt", d.Attempt), slog.String("state", o.State), slog.Int("status", o.Status)}
	switch o.State {
	case store.PushWebhookDelivered:
		h.logger.DebugContext(ctx, "webhook took push", attrs...)
	case store.PushWebhookPending:
		h.logger.InfoContext(ctx, "webhook refused push; will retry", append(attrs, slog.String("error", o.Error), slog.Duration("in", o.RetryIn))...)
	default:
		h.logger.WarnContext(ctx, "webhook delivery failed", append(attrs, slog.String("error", o.Error))...)
	}
	if h.cfg.OnWebhookAttempt != nil {
		h.cfg.OnWebhookAttempt(WebhookAttempt{DeliveryID: d.ID, Seq: d.Push.Seq, PartnerID: d.PartnerID, Attempt: d.Attempt,
			State: o.State, RetryIn: o.RetryIn, Status: o.Status, Error: o.Error, Recorded: err == nil && recorded})
	}
}

// post makes one attempt and says what should follow: done, failed for
// good, or a retry after a backoff.
func (h *Hub) post(ctx context.Context, d store.PushWebhookDelivery) store.PushWebhookOutcome {
	failed := func(status int, reason string) store.PushWebhookOutcome {
		return store.PushWebhookOutcome{State: store.PushWebhookFailed, Status: status, Error: reason}
	}
	retry := func(status int, reason string, after time.Duration) store.PushWebhookOutcome {
		in := max(h.backoff(d.Attempt), min(after, h.cfg.WebhookMaxBackoff))
		return store.PushWebhookOutcome{State: store.PushWebhookPending, RetryIn: in, Status: status, Error: reason}
	}
	switch {
	case d.URL == "":
		return failed(0, "the partner removed its webhook")
	case d.Unlinked:
		return failed(0, "the account is no longer linked to the fan")
	case d.Expired:
		return failed(0, "the offer ended before the webhook took it")
	}
	secret, err := h.unseal(d.PartnerID, d.Secret)
	if err != nil {
		return failed(0, err.Error())
	}
	body, err := json.Marshal(webhookBody{
		ID: strconv.FormatInt(d.ID, 10), Seq: d.Push.Seq, Event: d.Push.Event, PartnerUserID: d.PartnerUserID,
		OfferID: offerString(d), CreatedAt: d.Push.CreatedAt.UTC(), Data: d.Push.Data,
	})
	if err != nil {
		return failed(0, fmt.Sprintf("encoding body: %v", err))
	}
	// A POST in flight at shutdown finishes (within the timeout): its outcome is recorded.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return failed(0, fmt.Sprintf("building request: %v", err))
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Crescendo-Webhooks/1")
	req.Header.Set(HeaderDelivery, strconv.FormatInt(d.ID, 10))
	req.Header.Set(HeaderAttempt, strconv.Itoa(d.Attempt))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, sign(secret, ts, body))
	resp, err := h.client.Do(req)
	if err != nil {
		return retry(0, describe(err, h.cfg.WebhookTimeout), 0)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	reason := resp.Status
	if s := printable(snippet); s != "" {
		reason += ": " + s
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return store.PushWebhookOutcome{State: store.PushWebhookDelivered, Status: code}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return retry(code, reason, retryAfter(resp.Header.Get("Retry-After")))
	default:
		// The receiver refuses this push for good (a 3xx is not followed).
		return failed(code, reason)
	}
}

func offerString(d store.PushWebhookDelivery) string {
	if d.Push.OfferID == uuid.Nil {
		return ""
	}
	return d.Push.OfferID.String()
}

// backoff is the delay after attempt n (1 for the first): WebhookBackoff
// doubled n-1 times, at most WebhookMaxBackoff, with jitter.
func (h *Hub) backoff(n int) time.Duration {
	return jitter(min(h.cfg.WebhookMaxBackoff, h.cfg.WebhookBackoff<<min(max(n-1, 0), 20)))
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// describe says why a POST got no answer without repeating its URL, which may
// carry a token of the partner's.
func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Sprintf("no answer within %s", timeout)
		}
		err = ue.Err
	}
	return err.Error()
}

// printable keeps the start of a response body fit for a log line.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(string(b), ""))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

// webhookClient follows no redirects and, unless allowPrivate, connects only
// to public addresses, whatever the URL's name resolves to: a partner cannot
// make Crescendo call into its own network.
func webhookClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("refusing to connect to %q: %w", address, err)
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || !public(ip) {
				return fmt.Errorf("refusing to connect to %s: not a public address", host)
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: may reach anything
}

// public reports whether ip is a public unicast address.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Package ingest takes partners' batches of CloudEvents over HTTP (F23), for
// partners without a Kafka client: it checks each batch's signature and
// freshness, holds each partner to its rate, validates every event with the
// same decoder the consumer uses, produces the accepted ones to the activity
// topic keyed by subject, and answers a retried batch (same Idempotency-Key)
// with the stored answer instead of producing it again. It knows no HTTP:
// api/ frames requests and answers.
package ingest

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/logs"
	"github.com/crescendo-hq/crescendo/store"
)

// Store keeps partners' signing secrets and the answers to idempotency keys.
type Store interface {
	PutIngestSecret(ctx context.Context, partnerID string, sealed []byte) error
	IngestSecret(ctx context.Context, partnerID string) ([]byte, bool, error)
	ClaimIngestRequest(ctx context.Context, partnerID, key string, bodySHA256 []byte, staleAfter time.Duration) (store.IngestClaim, error)
	FinishIngestRequest(ctx context.Context, partnerID, key string, status int, response []byte) error
	ReleaseIngestRequest(ctx context.Context, partnerID, key string) error
}

// Record is one event to produce to the activity topic.
type Record struct {
	Key, Value []byte
	Headers    []events.Header
}

// Producer writes records to the activity topic, all or an error.
type Producer interface {
	Produce(ctx context.Context, records []Record) error
}

// Config configures a Service.
type Config struct {
	Store    Store
	Producer Producer
	Decoder  *events.Decoder
	// SealKey seals the signing secrets in the store (AES-256-GCM): 32
	// bytes, the same on every replica.
	SealKey []byte
	// Rate is how many events per second one partner may post to this
	// process; 0: no limit. Burst is how many at once; default the larger
	// of Rate and MaxEvents, so that a full batch can pass.
	Rate  float64
	Burst int
	// ReplayWindow is how far a batch's signed timestamp may be from now; default 5m.
	ReplayWindow time.Duration
	// MaxEvents bounds a batch; default 500.
	MaxEvents int
	// PendingTimeout is how long a batch being produced holds its
	// idempotency key before another request may take it over (the first
	// process died); default 1m.
	PendingTimeout time.Duration
	// Observe, when set, counts events by partner and outcome (accepted, or
	// the rejection reason).
	Observe func(partnerID, outcome string, n int)
	Clock   func() time.Time
	Logger  *slog.Logger
}

// Service handles partners' batches.
type Service struct {
	cfg    Config
	sealer cipher.AEAD
	logger *slog.Logger

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// New validates cfg and returns a service.
func New(cfg Config) (*Service, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("Store: required"))
	}
	if cfg.Producer == nil {
		errs = append(errs, errors.New("Producer: required"))
	}
	if cfg.Decoder == nil {
		errs = append(errs, errors.New("Decoder: required"))
	}
	if len(cfg.SealKey) != 32 {
		errs = append(errs, fmt.Errorf("SealKey: want 32 bytes, have %d", len(cfg.SealKey)))
	}
	if cfg.Rate < 0 {
		errs = append(errs, errors.New("Rate: want 0 or more"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	block, err := aes.NewCipher(cfg.SealKey)
	if err != nil {
		return nil, fmt.Errorf("ingest: preparing secret sealing: %w", err)
	}
	sealer, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("ingest: preparing secret sealing: %w", err)
	}
	cfg.ReplayWindow = cmp.Or(cfg.ReplayWindow, 5*time.Minute)
	cfg.MaxEvents = cmp.Or(cfg.MaxEvents, 500)
	cfg.Burst = cmp.Or(cfg.Burst, max(int(cfg.Rate), cfg.MaxEvents))
	cfg.PendingTimeout = cmp.Or(cfg.PendingTimeout, time.Minute)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Service{
		cfg: cfg, sealer: sealer, limiters: map[string]*rate.Limiter{},
		logger: cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "ingest")),
	}, nil
}

// MaxEvents is the most events a batch may hold.
func (s *Service) MaxEvents() int { return s.cfg.MaxEvents }

// Errors the HTTP layer maps to answers.
var (
	// ErrSignature: the signature or its timestamp is missing, malformed,
	// outside the replay window or does not verify. 401.
	ErrSignature = errors.New("signature")
	// ErrNoSecret: the partner has no signing secret yet. 401.
	ErrNoSecret = errors.New("no signing secret: create one first")
	// ErrKeyReused: the idempotency key was sent before with another body. 422.
	ErrKeyReused = errors.New("the Idempotency-Key was used before for another body")
	// ErrInProgress: a request with the same key is being handled now. 409.
	ErrInProgress = errors.New("a request with this Idempotency-Key is in progress; retry later")
)

// RateLimited is returned when the partner is over its rate. 429.
type RateLimited struct{ RetryAfter time.Duration }

func (e *RateLimited) Error() string {
	return fmt.Sprintf("over the rate of events per second; retry in %s", e.RetryAfter.Round(time.Millisecond))
}

// RotateSecret makes a new signing secret for the partner, replacing the
// old one at once, and returns it: it is shown this once.
func (s *Service) RotateSecret(ctx context.Context, partnerID string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a signing secret: %w", err)
	}
	secret := "isk_" + base64.RawURLEncoding.EncodeToString(b)
	nonce := make([]byte, s.sealer.NonceSize(), s.sealer.NonceSize()+len(secret)+s.sealer.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sealing the signing secret: %w", err)
	}
	sealed := s.sealer.Seal(nonce, nonce, []byte(secret), sealingData(partnerID))
	if err := s.cfg.Store.PutIngestSecret(ctx, partnerID, sealed); err != nil {
		return "", err
	}
	return secret, nil
}

// sealingData binds a sealed secret to its partner.
func sealingData(partnerID string) []byte {
	return []byte("crescendo ingest secret\x00" + partnerID)
}

func (s *Service) secret(ctx context.Context, partnerID string) ([]byte, error) {
	sealed, ok, err := s.cfg.Store.IngestSecret(ctx, partnerID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoSecret
	}
	n := s.sealer.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("opening the signing secret: too short")
	}
	secret, err := s.sealer.Open(nil, sealed[:n], sealed[n:], sealingData(partnerID))
	if err != nil {
		return nil, fmt.Errorf("opening the signing secret (was the sealing key changed?): %w", err)
	}
	return secret, nil
}

// Sign returns the signature header value of body at timestamp (Unix
// seconds) under secret, as a partner computes it: HMAC-SHA256 over the
// timestamp, a ".", and the body, hex in lower case, after "v1=".
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks that body was signed by the partner at timestamp (Unix
// seconds, decimal) within the replay window. signature may hold several
// comma-separated scheme=value entries; any v1 entry that matches passes.
func (s *Service) Verify(ctx context.Context, partnerID, timestamp, signature string, body []byte) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || timestamp == "" {
		return fmt.Errorf("%w: Crescendo-Timestamp must be Unix seconds", ErrSignature)
	}
	if d := s.cfg.Clock().Sub(time.Unix(ts, 0)); d > s.cfg.ReplayWindow || d < -s.cfg.ReplayWindow {
		return fmt.Errorf("%w: timestamp is %s from now, outside the window of %s", ErrSignature, d.Round(time.Second), s.cfg.ReplayWindow)
	}
	secret, err := s.secret(ctx, partnerID)
	if err != nil {
		return err
	}
	want := []byte(Sign(secret, timestamp, body))
	for entry := range strings.SplitSeq(signature, ",") {
		if e := strings.TrimSpace(entry); strings.HasPrefix(e, "v1=") && hmac.Equal([]byte(e), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: Crescendo-Signature does not verify", ErrSignature)
}

// Result is the outcome of one event of a batch.
type Result struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Status string `json:"status"` // accepted or rejected
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Response is the answer to a batch.
type Response struct {
	Accepted int      `json:"accepted"`
	Rejected int      `json:"rejected"`
	Results  []Result `json:"results"`
}

// Answer is what to send back: the status and JSON body, and whether it is
// the stored answer to an earlier request with the same key.
type Answer struct {
	Status   int
	Body     []byte
	Replayed bool
}

// Reasons an event of a batch is rejected besides the decoder's.
const (
	ReasonSourceMismatch = "source_mismatch" // source is not the partner posting it
	ReasonDuplicateID    = "duplicate_id"    // an earlier event of the batch has the same id
)

// Handle takes a verified batch from partnerID under the idempotency key.
func (s *Service) Handle(ctx context.Context, partnerID, key string, body []byte) (Answer, error) {
	raws, err := events.SplitBatch(body, s.cfg.MaxEvents)
	if err != nil {
		return Answer{}, err
	}
	if err := s.admit(partnerID, len(raws)); err != nil {
		return Answer{}, err
	}
	sum := sha256.Sum256(body)
	claim, err := s.cfg.Store.ClaimIngestRequest(ctx, partnerID, key, sum[:], s.cfg.PendingTimeout)
	if err != nil {
		return Answer{}, err
	}
	switch claim.State {
	case store.IngestDone:
		return Answer{Status: claim.Status, Body: claim.Response, Replayed: true}, nil
	case store.IngestConflict:
		return Answer{}, ErrKeyReused
	case store.IngestPending:
		return Answer{}, ErrInProgress
	}
	answer, err := s.produce(ctx, partnerID, raws)
	if err != nil {
		// Nothing was stored as the answer: a retry with the key produces the batch.
		if rerr := s.cfg.Store.ReleaseIngestRequest(context.WithoutCancel(ctx), partnerID, key); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Answer{}, err
	}
	if err := s.cfg.Store.FinishIngestRequest(context.WithoutCancel(ctx), partnerID, key, answer.Status, answer.Body); err != nil {
		// Produced, but the answer is not stored: a retry after PendingTimeout
		// would produce the batch again. Say so loudly; the events carry
		// their ids for consumers downstream to tell repeats.
		s.logger.ErrorContext(ctx, "produced a batch but could not store its answer", slog.String("partner", partnerID), slog.Any("error", err))
	}
	return answer, nil
}

// admit takes n events from the partner's bucket, or says when to retry.
func (s *Service) admit(partnerID string, n int) error {
	if s.cfg.Rate == 0 || n == 0 {
		return nil
	}
	s.mu.Lock()
	lim, ok := s.limiters[partnerID]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst)
		s.limiters[partnerID] = lim
	}
	s.mu.Unlock()
	now := s.cfg.Clock()
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return &RateLimited{RetryAfter: time.Duration(float64(n) / s.cfg.Rate * float64(time.Second))}
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &RateLimited{RetryAfter: d}
	}
	return nil
}

func (s *Service) produce(ctx context.Context, partnerID string, raws []json.RawMessage) (Answer, error) {
	resp := Response{Results: make([]Result, len(raws))}
	records := make([]Record, 0, len(raws))
	seen := make(map[string]bool, len(raws))
	counts := map[string]int{}
	for i, raw := range raws {
		res := Result{Index: i, Status: "accepted"}
		ev, err := s.cfg.Decoder.Decode(raw, nil)
		var rej *events.Rejection
		switch {
		case errors.As(err, &rej):
			res.Status, res.Reason, res.Detail = "rejected", string(rej.Reason), rej.Detail
		case err != nil:
			return Answer{}, err
		case ev.Source != partnerID:
			res.Status, res.Reason, res.Detail = "rejected", ReasonSourceMismatch, "source must be "+partnerID+", the partner posting it"
		case seen[ev.ID]:
			res.Status, res.Reason, res.Detail = "rejected", ReasonDuplicateID, "an earlier event of this batch has this id"
		}
		res.ID = ev.ID
		if res.Status == "accepted" {
			seen[ev.ID] = true
			records = append(records, Record{Key: []byte(ev.Subject), Value: raw,
				Headers: []events.Header{{Key: "content-type", Value: []byte("application/cloudevents+json")}}})
			resp.Accepted++
			counts["accepted"]++
		} else {
			resp.Rejected++
			counts[res.Reason]++
			s.logger.DebugContext(logs.WithEventID(ctx, ev.ID), "event rejected", slog.String("partner", partnerID),
				slog.Int("index", i), slog.String("reason", res.Reason))
		}
		resp.Results[i] = res
	}
	if len(records) > 0 {
		if err := s.cfg.Producer.Produce(ctx, records); err != nil {
			return Answer{}, fmt.Errorf("producing %d events: %w", len(records), err)
		}
	}
	if s.cfg.Observe != nil {
		for outcome, n := range counts {
			s.cfg.Observe(partnerID, outcome, n)
		}
	}
	s.logger.InfoContext(ctx, "batch ingested", slog.String("partner", partnerID),
		slog.Int("accepted", resp.Accepted), slog.Int("rejected", resp.Rejected))
	body, err := json.Marshal(resp)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Status: 200, Body: body}, nil
}

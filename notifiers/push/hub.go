// Package push delivers in-app pushes (F16): to the Server-Sent Events streams
// partner apps hold open for their signed-in users, whichever replica holds
// them, and to the webhooks partner backends register.
//
// A hub made by New keeps every push in Postgres before anything else: its
// seq is the SSE id. The append is announced with NOTIFY; every replica's hub
// listens and wakes the streams it holds, and each stream reads from the
// table the fan's pushes after the last one it sent. So a stream resuming
// after seq N carries exactly the pushes after N and then the live ones, with
// no gap or repeat between the two, and a push appended on one replica reaches
// a stream held by another. Which replicas hold a stream for which fan is kept
// in Postgres too, so every replica knows whether a fan is in the app.
//
// A hub made by NewHub keeps nothing: it hands pushes to the streams open in
// this process only (tests and tools).
package push

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

// Message is one in-app push, sent as a Server-Sent Event.
type Message struct {
	ID    string // the SSE id: the push's seq (or, on an in-process hub, the sender's id)
	Event string // the SSE event name
	Data  []byte // JSON
}

// subscriberBuffer bounds how far a slow stream of an in-process hub may lag
// before pushes to it fail (and delivery falls back to the next channel)
// rather than block the sender. Streams of a durable hub read from the table
// and never refuse.
const subscriberBuffer = 16

// pageSize is how many pushes a stream reads at a time.
const pageSize = 100

// ErrUnknownFan is returned by Open for a fan that does not exist (erased).
var ErrUnknownFan = errors.New("no such fan")

// ErrNotDurable is returned by the webhook registration methods of an in-process hub.
var ErrNotDurable = errors.New("webhooks need a hub backed by the database")

// ErrInvalidMessage is wrapped by the errors Deliver returns for a push that
// can never be sent (an event name that is not a token, data that is not
// JSON). Such errors report Permanent() true.
var ErrInvalidMessage = errors.New("invalid push")

type invalidMessage struct{ reason string }

func (e invalidMessage) Error() string   { return "invalid push: " + e.reason }
func (e invalidMessage) Unwrap() error   { return ErrInvalidMessage }
func (e invalidMessage) Permanent() bool { return true }

var eventName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func checkMessage(event string, data []byte) error {
	if !eventName.MatchString(event) {
		return invalidMessage{fmt.Sprintf("event %q: want 1 to 64 letters, digits, '_', '.' or '-'", event)}
	}
	if !json.Valid(data) {
		return invalidMessage{"data is not JSON"}
	}
	return nil
}

// Store is what a durable hub needs from Postgres; *store.Store has it.
type Store interface {
	AppendPush(ctx context.Context, p store.PushAppend) (store.PushAppended, error)
	PushSeqForOffer(ctx context.Context, offerID uuid.UUID, event string) (int64, bool, error)
	PushesAfter(ctx context.Context, fan uuid.UUID, after int64, limit int) ([]store.PushMessage, error)
	LastPushSeq(ctx context.Context, fan uuid.UUID) (int64, error)
	ListenPush(ctx context.Context, onListen func(), onNotice func(store.PushNotice)) error
	PushReach(ctx context.Context, fan uuid.UUID) (store.PushReach, error)
	SetPushPresence(ctx context.Context, replica, fan uuid.UUID, ttl time.Duration) (bool, error)
	ClearPushPresence(ctx context.Context, replica, fan uuid.UUID) error
	RenewPushPresence(ctx context.Context, replica uuid.UUID, fans []uuid.UUID, ttl time.Duration) ([]uuid.UUID, error)
	DropPushPresence(ctx context.Context, replica uuid.UUID) error
	PutPartnerWebhook(ctx context.Context, w store.PartnerWebhook) (store.PartnerWebhook, bool, error)
	PartnerWebhook(ctx context.Context, partnerID string) (store.PartnerWebhook, error)
	DeletePartnerWebhook(ctx context.Context, partnerID string) error
	ClaimPushWebhookDeliveries(ctx context.Context, limit int, lease time.Duration) ([]store.PushWebhookDelivery, error)
	FinishPushWebhookDelivery(ctx context.Context, id int64, attempt int, o store.PushWebhookOutcome) (bool, error)
	NextPushWebhookDue(ctx context.Context) (time.Duration, bool, error)
}

// Config configures a durable hub.
type Config struct {
	Store Store
	// SecretKey seals partners' webhook signing secrets in the database
	// (AES-256-GCM): 32 bytes, the same on every replica.
	SecretKey []byte
	// PresenceTTL is how long a replica's record of a stream it holds lasts
	// unless renewed (it is renewed every third of it): how long a replica
	// that died still counts its fans as in the app. Default 30s.
	PresenceTTL time.Duration
	// WebhookClient sends webhook POSTs. The default follows no redirects and
	// refuses to connect to loopback, private and link-local addresses.
	WebhookClient *http.Client
	// AllowPrivateWebhooks lets webhook URLs name loopback and private
	// addresses (development); the default client then connects to them too.
	AllowPrivateWebhooks bool
	// WebhookTimeout bounds each POST; default 10s.
	WebhookTimeout time.Duration
	// WebhookMaxAttempts bounds the POSTs of one push to one webhook; default 8.
	WebhookMaxAttempts int
	// WebhookBackoff is the delay before the first retry, doubled for each next
	// one up to WebhookMaxBackoff, each with jitter (half to all of it), or
	// longer when the receiver asks (Retry-After). Defaults 5s and 1h.
	WebhookBackoff, WebhookMaxBackoff time.Duration
	// WebhookWorkers is how many POSTs this replica has in flight; default 8.
	WebhookWorkers int
	// OnWebhookAttempt, when set, is called after each webhook attempt is
	// recorded (metrics, tests).
	OnWebhookAttempt func(WebhookAttempt)
	Logger           *slog.Logger
}

// Hub routes pushes to streams and webhooks. It is safe for concurrent use.
type Hub struct {
	store   Store // nil: an in-process hub
	cfg     Config
	logger  *slog.Logger
	replica uuid.UUID
	sealer  cipher.AEAD
	client  *http.Client
	// pokeWebhooks wakes the webhook sender: deliveries were queued.
	pokeWebhooks chan struct{}

	// presence serializes, per fan (striped), a change of the fan's local
	// streams with the presence write that follows it, so the database ends
	// up with the last word.
	presence [64]sync.Mutex
	mu       sync.Mutex
	subs     map[uuid.UUID]map[*subscriber]struct{}
}

// NewHub returns an in-process hub: pushes reach the streams open in this
// process only, and nothing is stored.
func NewHub() *Hub {
	return &Hub{subs: make(map[uuid.UUID]map[*subscriber]struct{}), logger: slog.Default()}
}

// New returns a durable hub. Run must run for its presence records to be
// renewed, announcements from other replicas to arrive and webhooks to be sent.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("push: Store is required")
	}
	if len(cfg.SecretKey) != 32 {
		return nil, fmt.Errorf("push: SecretKey: want 32 bytes, have %d", len(cfg.SecretKey))
	}
	block, err := aes.NewCipher(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("preparing webhook secret sealing: %w", err)
	}
	sealer, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("preparing webhook secret sealing: %w", err)
	}
	cfg.PresenceTTL = cmp.Or(cfg.PresenceTTL, 30*time.Second)
	cfg.WebhookTimeout = cmp.Or(cfg.WebhookTimeout, 10*time.Second)
	cfg.WebhookMaxAttempts = cmp.Or(cfg.WebhookMaxAttempts, 8)
	cfg.WebhookBackoff = cmp.Or(cfg.WebhookBackoff, 5*time.Second)
	cfg.WebhookMaxBackoff = cmp.Or(cfg.WebhookMaxBackoff, time.Hour)
	cfg.WebhookWorkers = cmp.Or(cfg.WebhookWorkers, 8)
	h := NewHub()
	h.store, h.cfg, h.sealer, h.replica = cfg.Store, cfg, sealer, uuid.New()
	h.logger = cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "push"))
	h.client = cmp.Or(cfg.WebhookClient, webhookClient(cfg.WebhookTimeout, cfg.AllowPrivateWebhooks))
	h.pokeWebhooks = make(chan struct{}, 1)
	return h, nil
}

// Durable reports whether the hub keeps pushes in the database (New) rather
// than in this process only (NewHub).
func (h *Hub) Durable() bool { return h.store != nil }

type subscriber struct {
	wake chan struct{} // holds a signal while pushes may be waiting
	gone chan struct{} // closed when the fan no longer exists
	once sync.Once
	// An in-process hub's pushes wait here.
	mu      sync.Mutex
	pending []Message
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) evict() { s.once.Do(func() { close(s.gone) }) }

// Stream is one open stream of a fan's pushes. Its methods other than Close
// are for the one goroutine that serves it.
type Stream struct {
	hub    *Hub
	fan    uuid.UUID
	sub    *subscriber
	cursor int64
	close  sync.Once
}

// Open opens a stream of the fan's pushes appended from now on. A durable hub
// answers ErrUnknownFan for a fan that does not exist.
func (h *Hub) Open(ctx context.Context, fan uuid.UUID) (*Stream, error) {
	return h.open(ctx, fan, 0, false)
}

// OpenAfter opens a stream that first carries the fan's pushes with a seq
// above after (the Last-Event-ID the client saw), then the live ones. On an
// in-process hub, which keeps no pushes, it is Open.
func (h *Hub) OpenAfter(ctx context.Context, fan uuid.UUID, after int64) (*Stream, error) {
	return h.open(ctx, fan, after, true)
}

func (h *Hub) open(ctx context.Context, fan uuid.UUID, after int64, resume bool) (*Stream, error) {
	sub := &subscriber{wake: make(chan struct{}, 1), gone: make(chan struct{})}
	st := &Stream{hub: h, fan: fan, sub: sub, cursor: after}
	if h.store == nil {
		h.add(fan, sub)
		return st, nil
	}
	lock := h.presenceLock(fan)
	lock.Lock()
	defer lock.Unlock()
	// Subscribe first: a push announced from here on wakes this stream.
	first := h.add(fan, sub)
	fail := func(err error) (*Stream, error) {
		h.remove(fan, sub)
		return nil, err
	}
	if !resume {
		// Read where the fan's pushes stand before recording presence: a push
		// appended because of this stream's presence comes after it.
		seq, err := h.store.LastPushSeq(ctx, fan)
		if err != nil {
			return fail(fmt.Errorf("opening push stream: %w", err))
		}
		st.cursor = seq
	}
	if first {
		ok, err := h.store.SetPushPresence(ctx, h.replica, fan, h.cfg.PresenceTTL)
		if err != nil {
			return fail(fmt.Errorf("opening push stream: %w", err))
		}
		if !ok {
			return fail(ErrUnknownFan)
		}
	}
	if resume {
		sub.signal()
	}
	return st, nil
}

// Cursor returns the seq of the last push the stream carried, or the one it
// started after: where the client resumes from. It reports false on an
// in-process hub's streams, which cannot resume.
func (s *Stream) Cursor() (int64, bool) { return s.cursor, s.hub.store != nil }

// Ready receives when pushes may be waiting for Next.
func (s *Stream) Ready() <-chan struct{} { return s.sub.wake }

// Done is closed when the stream's fan no longer exists (erased): end the stream.
func (s *Stream) Done() <-chan struct{} { return s.sub.gone }

// Next returns the pushes waiting for the stream, oldest first, and moves the
// stream past them. When it leaves some for later, Ready receives again.
func (s *Stream) Next(ctx context.Context) ([]Message, error) {
	if s.hub.store == nil {
		s.sub.mu.Lock()
		defer s.sub.mu.Unlock()
		out := s.sub.pending
		s.sub.pending = nil
		return out, nil
	}
	ps, err := s.hub.store.PushesAfter(ctx, s.fan, s.cursor, pageSize)
	if err != nil {
		return nil, fmt.Errorf("reading the stream's pushes: %w", err)
	}
	if len(ps) == pageSize {
		s.sub.signal()
	}
	out := make([]Message, len(ps))
	for i, p := range ps {
		out[i] = Message{ID: strconv.FormatInt(p.Seq, 10), Event: p.Event, Data: p.Data}
	}
	if len(ps) > 0 {
		s.cursor = ps[len(ps)-1].Seq
	}
	return out, nil
}

// Close closes the stream; it is idempotent.
func (s *Stream) Close() {
	s.close.Do(func() {
		h := s.hub
		if h.store == nil {
			h.remove(s.fan, s.sub)
			return
		}
		lock := h.presenceLock(s.fan)
		lock.Lock()
		defer lock.Unlock()
		if !h.remove(s.fan, s.sub) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.store.ClearPushPresence(ctx, h.replica, s.fan); err != nil {
			// The record expires by itself within PresenceTTL.
			h.logger.WarnContext(ctx, "clearing push presence", slog.Any("error", err))
		}
	})
}

func (h *Hub) presenceLock(fan uuid.UUID) *sync.Mutex {
	return &h.presence[int(fan[0])%len(h.presence)]
}

// add registers sub and reports whether it is the fan's first stream here.
func (h *Hub) add(fan uuid.UUID, sub *subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[fan] == nil {
		h.subs[fan] = make(map[*subscriber]struct{})
	}
	h.subs[fan][sub] = struct{}{}
	return len(h.subs[fan]) == 1
}

// remove unregisters sub and reports whether the fan has no stream here left.
func (h *Hub) remove(fan uuid.UUID, sub *subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[fan][sub]; !ok {
		return false
	}
	delete(h.subs[fan], sub)
	if len(h.subs[fan]) == 0 {
		delete(h.subs, fan)
		return true
	}
	return false
}

// each calls fn for every stream of the fan held here.
func (h *Hub) each(fan uuid.UUID, fn func(*subscriber)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[fan] {
		fn(s)
	}
}

func (h *Hub) local(fan uuid.UUID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[fan]) > 0
}

// Reach says how an in-app push can reach a fan now.
type Reach struct {
	// Stream: a stream is open for the fan on some replica (the fan is in the app).
	Stream bool
	// Webhook: a partner the fan has an account at takes pushes on a webhook.
	Webhook bool
}

// Reach reports how a push could reach the fan now.
func (h *Hub) Reach(ctx context.Context, fan uuid.UUID) (Reach, error) {
	if h.store == nil {
		return Reach{Stream: h.local(fan)}, nil
	}
	r, err := h.store.PushReach(ctx, fan)
	if err != nil {
		return Reach{}, err
	}
	return Reach{Stream: r.Stream || h.local(fan), Webhook: r.Webhook}, nil
}

// Online reports whether a stream is open for the fan on any replica. It
// answers false when the database cannot be asked; Reach reports the error.
func (h *Hub) Online(fan uuid.UUID) bool {
	if h.local(fan) {
		return true
	}
	if h.store == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := h.Reach(ctx, fan)
	if err != nil {
		h.logger.WarnContext(ctx, "asking whether a fan is in the app", slog.Any("error", err))
	}
	return r.Stream
}

// Deliver pushes an event about an offer (uuid.Nil: none) to the fan: to the
// streams open for the fan on any replica, live or when they resume, and to
// the webhook of every partner the fan has an account at, which is retried
// until it takes it or the attempts run out. It reports whether anything
// could take the push (a stream was open or a webhook registered), and the
// push's id (its seq); when nothing could, nothing is kept. A push for an
// offer is kept once: delivering it again reports the first one. Errors are
// transient unless they wrap ErrInvalidMessage.
func (h *Hub) Deliver(ctx context.Context, fan, offerID uuid.UUID, event string, data []byte) (string, bool, error) {
	if err := checkMessage(event, data); err != nil {
		return "", false, err
	}
	if h.store == nil {
		n := h.Send(fan, Message{ID: offerID.String(), Event: event, Data: data})
		return offerID.String(), n > 0, nil
	}
	res, err := h.store.AppendPush(ctx, store.PushAppend{FanID: fan, OfferID: offerID, Event: event, Data: data})
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil // erased
	}
	if err != nil {
		return "", false, fmt.Errorf("pushing to fan %s: %w", fan, err)
	}
	if res.Seq == 0 {
		return "", false, nil
	}
	if !res.Repeat {
		// The announcement wakes them too; this spares local streams its round trip.
		h.each(fan, (*subscriber).signal)
		if res.Webhooks > 0 {
			h.poke()
		}
	}
	return strconv.FormatInt(res.Seq, 10), true, nil
}

// FindSent returns the id of the offer's push of the event, if Deliver kept
// one: after an attempt whose outcome is unknown, it tells whether the push went out.
func (h *Hub) FindSent(ctx context.Context, offerID uuid.UUID, event string) (string, bool, error) {
	if h.store == nil {
		return "", false, nil
	}
	seq, ok, err := h.store.PushSeqForOffer(ctx, offerID, event)
	if err != nil || !ok {
		return "", false, err
	}
	return strconv.FormatInt(seq, 10), true, nil
}

// Send hands m to the fan's streams and reports how many took it. An
// in-process hub hands it to each stream open here whose backlog has room; a
// durable hub delivers it as Deliver does (m.ID, if an offer id, names the
// offer) and reports 1 when it was kept. Prefer Deliver, which takes a context
// and reports errors.
func (h *Hub) Send(fan uuid.UUID, m Message) int {
	if h.store != nil {
		offerID, _ := uuid.Parse(m.ID)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, ok, err := h.Deliver(ctx, fan, offerID, m.Event, m.Data)
		if err != nil {
			h.logger.WarnContext(ctx, "delivering push", slog.Any("error", err))
		}
		if ok {
			return 1
		}
		return 0
	}
	n := 0
	h.each(fan, func(s *subscriber) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.pending) >= subscriberBuffer {
			return
		}
		s.pending = append(s.pending, m)
		s.signal()
		n++
	})
	return n
}

// Run keeps a durable hub's part of the cluster going until ctx ends: it
// listens for pushes appended on any replica and wakes the streams held here,
// renews this replica's presence records, and sends webhook deliveries that
// are due. It reconnects on its own, returns nil when ctx ends (after the
// webhook POSTs in flight, at most WebhookTimeout), and must run once per hub.
// On an in-process hub it only waits for ctx.
func (h *Hub) Run(ctx context.Context) error {
	if h.store == nil {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { h.listen(ctx) })
	wg.Go(func() { h.renewPresence(ctx) })
	wg.Go(func() { h.sendWebhooks(ctx) })
	wg.Wait()
	h.client.CloseIdleConnections()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.store.DropPushPresence(dctx, h.replica); err != nil {
		h.logger.WarnContext(dctx, "dropping push presence", slog.Any("error", err))
	}
	return nil
}

func (h *Hub) listen(ctx context.Context) {
	delay := 100 * time.Millisecond
	for {
		started := time.Now()
		err := h.store.ListenPush(ctx, func() {
			// Announcements made while not listening are lost: every stream
			// here looks at the table again, and so does the webhook sender.
			h.mu.Lock()
			for _, subs := range h.subs {
				for s := range subs {
					s.signal()
				}
			}
			h.mu.Unlock()
			h.poke()
		}, func(n store.PushNotice) {
			h.each(n.FanID, (*subscriber).signal)
			if n.Webhooks > 0 {
				h.poke()
			}
		})
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			delay = 100 * time.Millisecond
		}
		h.logger.WarnContext(ctx, "listening for pushes; reconnecting", slog.Any("error", err), slog.Duration("in", delay))
		if !wait(ctx, jitter(delay), nil) {
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// renewPresence renews this replica's presence records every third of their
// lifetime, writes back any that went missing, and ends the streams of fans
// that no longer exist.
func (h *Hub) renewPresence(ctx context.Context) {
	for wait(ctx, h.cfg.PresenceTTL/3, nil) {
		h.mu.Lock()
		fans := make([]uuid.UUID, 0, len(h.subs))
		for f := range h.subs {
			fans = append(fans, f)
		}
		h.mu.Unlock()
		missing, err := h.store.RenewPushPresence(ctx, h.replica, fans, h.cfg.PresenceTTL)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.WarnContext(ctx, "renewing push presence", slog.Any("error", err))
			}
			continue
		}
		for _, fan := range missing {
			h.restorePresence(ctx, fan)
		}
	}
}

func (h *Hub) restorePresence(ctx context.Context, fan uuid.UUID) {
	lock := h.presenceLock(fan)
	lock.Lock()
	defer lock.Unlock()
	if !h.local(fan) {
		return // its last stream closed meanwhile
	}
	ok, err := h.store.SetPushPresence(ctx, h.replica, fan, h.cfg.PresenceTTL)
	if err != nil {
		h.logger.WarnContext(ctx, "restoring push presence", slog.Any("error", err))
		return
	}
	if !ok {
		h.each(fan, (*subscriber).evict)
	}
}

// poke wakes the webhook sender.
func (h *Hub) poke() {
	select {
	case h.pokeWebhooks <- struct{}{}:
	default:
	}
}

// wait waits d, or until wake receives; it reports false when ctx ended first.
func wait(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

// jitter returns a duration between half of d and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

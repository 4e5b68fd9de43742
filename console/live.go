package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

// feed fans the store's offer notices out to the live streams this process
// holds. One connection listens, whatever the number of streams.
type feed struct {
	offers Offers
	logger *slog.Logger

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one live stream's queue of offer ids. A stream that falls
// behind by more than its buffer, or that may have missed notices while the
// listener reconnected, is told to resync: it reads the latest offers again.
type subscriber struct {
	ids    chan uuid.UUID
	resync chan struct{}
}

func newFeed(o Offers, logger *slog.Logger) *feed {
	return &feed{offers: o, logger: logger, subs: map[*subscriber]struct{}{}}
}

func (f *feed) subscribe() *subscriber {
	s := &subscriber{ids: make(chan uuid.UUID, 512), resync: make(chan struct{}, 1)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

func (f *feed) unsubscribe(s *subscriber) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
}

func (f *feed) publish(id uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		select {
		case s.ids <- id:
		default:
			s.askResync()
		}
	}
}

func (f *feed) resyncAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.askResync()
	}
}

func (s *subscriber) askResync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// run listens until ctx ends, reconnecting with a growing pause after errors.
func (f *feed) run(ctx context.Context) error {
	pause := 100 * time.Millisecond
	for {
		err := f.offers.ListenOffers(ctx, f.resyncAll, f.publish)
		if ctx.Err() != nil {
			return nil
		}
		f.logger.WarnContext(ctx, "listening for offers; reconnecting", slog.Any("error", err), slog.Duration("after", pause))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(pause*2, 10*time.Second)
	}
}

// liveBacklog is how many of the latest offers a live view starts with.
const liveBacklog = 50

type livePageData struct {
	Offers []store.LiveOffer
}

func (c *Console) livePage(w http.ResponseWriter, r *http.Request, s session) {
	p := c.page(s, "Live offers")
	p.Nav = "live"
	c.render(w, r, http.StatusOK, "live", p, livePageData{})
}

// liveStream is the live view's Server-Sent Events stream: the latest offers
// first, then each offer of the organization as it is issued or changes
// (delivered, failed, expired, redeemed), each as an "offer" event whose
// data is the offer. It checks now and then that the token still holds.
func (c *Console) liveStream(w http.ResponseWriter, r *http.Request, s session) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	sub := c.feed.subscribe() // before the backlog, so nothing falls between the two
	defer c.feed.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(list []store.LiveOffer) bool {
		for _, o := range list {
			b, err := json.Marshal(o)
			if err != nil {
				return false
			}
			if _, err := fmt.Fprintf(w, "event: offer\ndata: %s\n\n", b); err != nil {
				return false
			}
		}
		flusher.Flush()
		return true
	}
	backlog := func() bool {
		list, err := c.cfg.Offers.RecentOffers(ctx, s.OrgID, liveBacklog)
		if err != nil {
			c.logger.WarnContext(ctx, "reading recent offers", slog.Any("error", err))
			return ctx.Err() == nil
		}
		slices.Reverse(list) // oldest first: the page puts each new one on top
		return send(list)
	}
	if _, err := fmt.Fprint(w, ": connected\n\n"); err != nil || !backlog() {
		return
	}
	heartbeat := time.NewTicker(c.cfg.Heartbeat)
	defer heartbeat.Stop()
	reauth := time.NewTicker(c.cfg.Reauthenticate)
	defer reauth.Stop()
	// Notices come in bursts (a checkpoint writes many offers): read them in
	// one query after a short pause rather than one query each.
	const gather = 100 * time.Millisecond
	var pending []uuid.UUID
	var flush <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-sub.ids:
			pending = append(pending, id)
			if flush == nil {
				flush = time.After(gather)
			}
		case <-flush:
			flush = nil
			ids := slices.Compact(slices.SortedFunc(slices.Values(pending), func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) }))
			pending = pending[:0]
			list, err := c.cfg.Offers.LiveOffersByID(ctx, s.OrgID, ids)
			if err != nil {
				c.logger.WarnContext(ctx, "reading offers", slog.Any("error", err))
				continue
			}
			if !send(list) {
				return
			}
		case <-sub.resync:
			if !backlog() {
				return
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-reauth.C:
			if _, ok, err := c.cfg.Auth.Authenticate(ctx, s.token); err == nil && !ok {
				_, _ = fmt.Fprint(w, "event: signed-out\ndata: {}\n\n")
				flusher.Flush()
				return
			}
		}
	}
}

package notifiers

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// combiner groups the bookkeeping writes of concurrent deliveries into one
// statement each: every delivery writes an attempt before it sends and
// marks the offer after, and on two cores a round trip and a commit per
// write cost more database CPU than the writes themselves.
//
// It batches without a timer or a goroutine of its own: the first caller
// writes what is pending; callers arriving meanwhile queue and the first of
// them writes the next batch when the current one is done (with lanes > 1,
// that many batches may be in flight). An idle combiner
// adds no latency, and a busy one amortizes a commit over everyone waiting.
// Each caller returns only once its item is durable (or the write failed),
// so the order of effects a delivery depends on is unchanged.
type combiner[T, R any] struct {
	// write writes (or reads) items at once, returning one result per item.
	write func(ctx context.Context, items []T) ([]R, error)
	max   int // items per write
	// lanes is how many writes may be in flight at once.
	lanes int

	mu      sync.Mutex
	active  int // callers writing, or handed the turn
	pending []*combined[T, R]
}

type combined[T, R any] struct {
	item T
	// res receives the write's result, or lead=true: this caller writes next.
	res chan combinedResult[R]
}

type combinedResult[R any] struct {
	r    R
	err  error
	lead bool
}

// writeTimeout bounds a grouped write: it runs on behalf of every caller in
// its batch, so no one caller's cancellation may cut it short.
const writeTimeout = 15 * time.Second

func newCombiner[T, R any](batch, lanes int, write func(ctx context.Context, items []T) ([]R, error)) *combiner[T, R] {
	return &combiner[T, R]{write: write, max: batch, lanes: max(lanes, 1)}
}

// writeOnly adapts a write without results to a combiner's.
func writeOnly[T any](write func(ctx context.Context, items []T) error) func(context.Context, []T) ([]struct{}, error) {
	return func(ctx context.Context, items []T) ([]struct{}, error) {
		return make([]struct{}, len(items)), write(ctx, items)
	}
}

// do writes item, alone or with others, and returns the write's result.
func (c *combiner[T, R]) do(ctx context.Context, item T) (R, error) {
	me := &combined[T, R]{item: item, res: make(chan combinedResult[R], 1)}
	c.mu.Lock()
	c.pending = append(c.pending, me)
	if c.active == c.lanes {
		c.mu.Unlock()
		// Not abandoned on ctx: the write may already carry the item.
		if r := <-me.res; !r.lead {
			return r.r, r.err
		}
	} else {
		c.active++
		c.mu.Unlock()
	}
	return c.lead(ctx, me)
}

// lead writes one batch, me and the oldest waiting, and hands the turn on.
func (c *combiner[T, R]) lead(ctx context.Context, me *combined[T, R]) (R, error) {
	c.mu.Lock()
	// me, and the oldest waiting besides it (a caller handed the turn is no
	// longer in pending; one that took a free lane is).
	batch := []*combined[T, R]{me}
	rest := c.pending[:0]
	for _, p := range c.pending {
		switch {
		case p == me:
		case len(batch) < c.max:
			batch = append(batch, p)
		default:
			rest = append(rest, p)
		}
	}
	clear(c.pending[len(rest):])
	c.pending = rest
	c.mu.Unlock()
	items := make([]T, len(batch))
	for i, b := range batch {
		items[i] = b.item
	}
	results := c.writeAll(ctx, items)
	var mine combinedResult[R]
	for i, b := range batch {
		if b == me {
			mine = results[i]
			continue
		}
		b.res <- results[i]
	}
	c.mu.Lock()
	if len(c.pending) > 0 {
		// Taken out of pending now, so that no other lane hands it a turn too.
		next := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		next.res <- combinedResult[R]{lead: true}
	} else {
		c.active--
		c.mu.Unlock()
	}
	return mine.r, mine.err
}

// writeAll writes items in one statement; if that fails, one by one, so that
// one item the database refuses (an offer erased meanwhile) fails only its
// own delivery.
func (c *combiner[T, R]) writeAll(ctx context.Context, items []T) []combinedResult[R] {
	ctx = context.WithoutCancel(ctx)
	write := func(items []T) ([]R, error) {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		rs, err := c.write(wctx, items)
		if err == nil && len(rs) != len(items) {
			err = fmt.Errorf("grouped write returned %d results for %d items", len(rs), len(items))
		}
		return rs, err
	}
	out := make([]combinedResult[R], len(items))
	rs, err := write(items)
	if err == nil || len(items) == 1 {
		for i := range out {
			out[i].err = err
			if err == nil {
				out[i].r = rs[i]
			}
		}
		return out
	}
	for i := range items {
		if rs, err := write(items[i : i+1]); err != nil {
			out[i].err = err
		} else {
			out[i].r = rs[0]
		}
	}
	return out
}

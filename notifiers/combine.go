package notifiers

import (
	"context"
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
// them writes the next batch when the current one is done. An idle combiner
// adds no latency, and a busy one amortizes a commit over everyone waiting.
// Each caller returns only once its item is durable (or the write failed),
// so the order of effects a delivery depends on is unchanged.
type combiner[T any] struct {
	write func(ctx context.Context, items []T) error
	max   int // items per write

	mu      sync.Mutex
	busy    bool // a caller is writing, or has been handed the turn
	pending []*combined[T]
}

type combined[T any] struct {
	item T
	// res receives the write's result, or lead=true: this caller writes next.
	res chan combinedResult
}

type combinedResult struct {
	err  error
	lead bool
}

// writeTimeout bounds a grouped write: it runs on behalf of every caller in
// its batch, so no one caller's cancellation may cut it short.
const writeTimeout = 15 * time.Second

func newCombiner[T any](max int, write func(ctx context.Context, items []T) error) *combiner[T] {
	return &combiner[T]{write: write, max: max}
}

// do writes item, alone or with others, and returns the write's result.
func (c *combiner[T]) do(ctx context.Context, item T) error {
	me := &combined[T]{item: item, res: make(chan combinedResult, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, me)
	if c.busy {
		c.mu.Unlock()
		// Not abandoned on ctx: the write may already carry the item.
		if r := <-me.res; !r.lead {
			return r.err
		}
	} else {
		c.busy = true
		c.mu.Unlock()
	}
	return c.lead(ctx, me)
}

// lead writes one batch, which holds me, and hands the turn on.
func (c *combiner[T]) lead(ctx context.Context, me *combined[T]) error {
	c.mu.Lock()
	n := min(len(c.pending), c.max)
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	c.mu.Unlock()
	// me queued before any caller that joined after it was handed the turn
	// (pending is in arrival order and a turn goes to its oldest entry), so
	// it is in this batch.
	items := make([]T, len(batch))
	for i, b := range batch {
		items[i] = b.item
	}
	errs := c.writeAll(ctx, items)
	var mine error
	for i, b := range batch {
		if b == me {
			mine = errs[i]
			continue
		}
		b.res <- combinedResult{err: errs[i]}
	}
	c.mu.Lock()
	if len(c.pending) > 0 {
		next := c.pending[0]
		c.mu.Unlock()
		next.res <- combinedResult{lead: true}
	} else {
		c.busy = false
		c.mu.Unlock()
	}
	return mine
}

// writeAll writes items in one statement; if that fails, one by one, so that
// one item the database refuses (an offer erased meanwhile) fails only its
// own delivery.
func (c *combiner[T]) writeAll(ctx context.Context, items []T) []error {
	ctx = context.WithoutCancel(ctx)
	write := func(items []T) error {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return c.write(wctx, items)
	}
	errs := make([]error, len(items))
	err := write(items)
	if err == nil || len(items) == 1 {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for i := range items {
		errs[i] = write(items[i : i+1])
	}
	return errs
}

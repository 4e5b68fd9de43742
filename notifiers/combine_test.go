package notifiers

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// Concurrent callers are written in batches, each item exactly once, and
// each caller returns only after the write that carried its item.
func TestCombinerGroupsConcurrentWrites(t *testing.T) {
	var mu sync.Mutex
	var written []int
	writes := 0
	hold := make(chan struct{})
	first := make(chan struct{})
	c := newCombiner(64, 1, writeOnly(func(_ context.Context, items []int) error {
		mu.Lock()
		writes++
		n := writes
		mu.Unlock()
		if n == 1 {
			close(first)
			<-hold // the others queue behind the first write
		}
		mu.Lock()
		written = append(written, items...)
		mu.Unlock()
		return nil
	}))
	const callers = 100
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.do(t.Context(), 0); err != nil {
			t.Error(err)
		}
	})
	<-first
	var queued sync.WaitGroup
	for i := 1; i < callers; i++ {
		queued.Add(1)
		wg.Go(func() {
			c.mu.Lock()
			queued.Done()
			c.mu.Unlock()
			if _, err := c.do(t.Context(), i); err != nil {
				t.Error(err)
			}
			mu.Lock()
			done := slices.Contains(written, i)
			mu.Unlock()
			if !done {
				t.Errorf("caller %d returned before its item was written", i)
			}
		})
	}
	queued.Wait()
	close(hold)
	wg.Wait()
	slices.Sort(written)
	for i, v := range written {
		if v != i {
			t.Fatalf("written %v, want 0..%d once each", written, callers-1)
		}
	}
	if len(written) != callers {
		t.Fatalf("%d items written, want %d", len(written), callers)
	}
	if writes >= callers {
		t.Fatalf("%d writes for %d concurrent callers: nothing was grouped", writes, callers)
	}
	t.Logf("%d callers in %d writes", callers, writes)
}

// A batch the store refuses is written item by item: only the bad item's
// caller gets the error.
func TestCombinerIsolatesARefusedItem(t *testing.T) {
	bad := errors.New("refused")
	hold, first := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := newCombiner(64, 1, writeOnly(func(_ context.Context, items []int) error {
		once.Do(func() { close(first); <-hold })
		if slices.Contains(items, 13) {
			return bad
		}
		return nil
	}))
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.do(t.Context(), 0) })
	<-first
	errs := make([]error, 30)
	var queued sync.WaitGroup
	for i := 1; i < len(errs); i++ {
		queued.Add(1)
		wg.Go(func() {
			c.mu.Lock()
			queued.Done()
			c.mu.Unlock()
			_, errs[i] = c.do(t.Context(), i)
		})
	}
	queued.Wait()
	close(hold)
	wg.Wait()
	for i, err := range errs[1:] {
		if want := i+1 == 13; errors.Is(err, bad) != want {
			t.Errorf("item %d: %v", i+1, err)
		}
	}
}

// With two lanes, at most two writes run at once, every item is written
// once, and every caller returns (no turn is handed twice or lost).
func TestCombinerLanes(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	inFlight, most := 0, 0
	c := newCombiner(8, 2, writeOnly(func(_ context.Context, items []int) error {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		for _, i := range items {
			seen[i]++
		}
		mu.Unlock()
		runtime.Gosched()
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	}))
	const callers = 2000
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if _, err := c.do(t.Context(), i); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(seen) != callers {
		t.Fatalf("%d distinct items written, want %d", len(seen), callers)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("item %d written %d times", i, n)
		}
	}
	if most > 2 {
		t.Fatalf("%d writes in flight at once with two lanes", most)
	}
	if c.active != 0 || len(c.pending) != 0 {
		t.Fatalf("after every caller returned: %d lanes active, %d pending", c.active, len(c.pending))
	}
}

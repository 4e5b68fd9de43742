package sessions

import (
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// The table answers as a map does through puts, gets and removals, for a
// population small enough that fans are put, removed and put again, with the
// nil fan among them.
func TestTableAnswersAsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fans := make([]uuid.UUID, 3000)
	for i := range fans {
		fans[i] = uuid.New()
	}
	fans[0] = uuid.Nil
	tab := newTable()
	want := map[uuid.UUID]int64{}
	for op := range 200_000 {
		f := fans[rng.IntN(len(fans))]
		switch r := rng.IntN(10); {
		case r < 6:
			e, had := tab.put(f)
			if _, in := want[f]; had != in {
				t.Fatalf("op %d: put(%s) reported had=%t, want %t", op, f, had, in)
			}
			e.last = int64(op)
			want[f] = int64(op)
		case r < 8:
			_, in := want[f]
			if got := tab.remove(f); got != in {
				t.Fatalf("op %d: remove(%s) = %t, want %t", op, f, got, in)
			}
			delete(want, f)
		default:
			e := tab.get(f)
			w, in := want[f]
			if (e != nil) != in || (e != nil && e.last != w) {
				t.Fatalf("op %d: get(%s) = %v, want %d (present %t)", op, f, e, w, in)
			}
		}
		if op%10_000 == 0 {
			checkTable(t, &tab, want)
		}
	}
	checkTable(t, &tab, want)
}

func checkTable(t *testing.T, tab *table, want map[uuid.UUID]int64) {
	t.Helper()
	if tab.len() != len(want) {
		t.Fatalf("len() = %d, want %d", tab.len(), len(want))
	}
	seen := 0
	for f, e := range tab.all() {
		if w, in := want[f]; !in || e.last != w {
			t.Fatalf("all() yields %s at %d, want %d (present %t)", f, e.last, w, in)
		}
		seen++
	}
	if seen != len(want) {
		t.Fatalf("all() yields %d fans, want %d", seen, len(want))
	}
	for f, w := range want {
		if e := tab.get(f); e == nil || e.last != w {
			t.Fatalf("get(%s) = %v, want %d", f, e, w)
		}
	}
}

// Fans whose runs start at the same slot, near the end of the table so that
// the run wraps, keep every entry reachable when one in the middle goes.
func TestTableRemoveInsideAWrappingRun(t *testing.T) {
	tab := newTable()
	var run []uuid.UUID
	for len(run) < 6 {
		f := uuid.New()
		if tab.home(f) == tab.mask-1 {
			run = append(run, f)
		}
	}
	other := uuid.New()
	for tab.home(other) != 1 {
		other = uuid.New()
	}
	for i, f := range append(run, other) {
		e, _ := tab.put(f)
		e.last = int64(i)
	}
	for _, gone := range []int{2, 0, 5} {
		if !tab.remove(run[gone]) {
			t.Fatalf("remove(run[%d]) found nothing", gone)
		}
		if tab.get(run[gone]) != nil {
			t.Fatalf("run[%d] still found after its removal", gone)
		}
	}
	for i, f := range append(run, other) {
		if i == 0 || i == 2 || i == 5 {
			continue
		}
		if e := tab.get(f); e == nil || e.last != int64(i) {
			t.Fatalf("entry %d lost after removals: %v", i, e)
		}
	}
}

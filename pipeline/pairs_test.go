package pipeline

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/scoring"
)

// stateN returns a pair state that holds n, to tell states apart.
func stateN(t *testing.T, n uint32) scoring.PairState {
	t.Helper()
	b := make([]byte, 29)
	b[0] = 1
	binary.LittleEndian.PutUint32(b[17:], n) // seconds listened
	var st scoring.PairState
	if err := st.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPairTable(t *testing.T) {
	tab := newPairTable()
	const n = 3<<pageBits + 17 // across pages
	fans := make([]uuid.UUID, n)
	for i := range fans {
		fans[i] = uuid.New()
		k := scoring.PairKey{Fan: fans[i], Performer: scoring.PerformerRef(i % 7)}
		tab.markDirty(tab.add(k, stateN(t, uint32(i))), 0)
		if i%2 == 0 { // marked twice, reported once
			slot, _ := tab.lookup(k)
			tab.markDirty(slot, 0)
		}
	}
	seen := map[scoring.PairKey]bool{}
	tab.takeDirty(func(k scoring.PairKey, st *scoring.PairState, _ uint32) {
		if seen[k] {
			t.Fatalf("pair %v reported twice", k)
		}
		seen[k] = true
	})
	if len(seen) != n {
		t.Fatalf("takeDirty reported %d pairs; want %d", len(seen), n)
	}
	for i, f := range fans {
		k := scoring.PairKey{Fan: f, Performer: scoring.PerformerRef(i % 7)}
		if st := tab.get(k); st == nil || *st != stateN(t, uint32(i)) {
			t.Fatalf("pair %d holds %v; want its own state", i, st)
		}
	}

	// Change two pairs, forget one of them and a clean one: only the other
	// changed pair is reported, and forgotten slots are reused.
	k0 := scoring.PairKey{Fan: fans[0], Performer: 0}
	k1 := scoring.PairKey{Fan: fans[1], Performer: 1}
	k2 := scoring.PairKey{Fan: fans[2], Performer: 2}
	for _, k := range []scoring.PairKey{k0, k1} {
		slot, _ := tab.lookup(k)
		*tab.at(slot) = stateN(t, 1_000_000)
		tab.markDirty(slot, 0)
	}
	if got := tab.forget(func(k scoring.PairKey) bool { return k.Fan == fans[0] || k.Fan == fans[2] }); got != 2 {
		t.Fatalf("forget dropped %d pairs; want 2", got)
	}
	if tab.get(k0) != nil || tab.get(k2) != nil || tab.len() != n-2 {
		t.Fatalf("forgotten pairs still held (len %d)", tab.len())
	}
	var dirty []scoring.PairKey
	tab.takeDirty(func(k scoring.PairKey, _ *scoring.PairState, _ uint32) { dirty = append(dirty, k) })
	if len(dirty) != 1 || dirty[0] != k1 {
		t.Fatalf("dirty after forget = %v; want only %v", dirty, k1)
	}
	used := tab.used
	kNew := scoring.PairKey{Fan: uuid.New(), Performer: 3}
	slot := tab.add(kNew, stateN(t, 7))
	tab.markDirty(slot, 0) // a reused slot starts clean
	if tab.used != used {
		t.Fatalf("add took a new slot (%d) while forgotten ones were free", slot)
	}
	dirty = dirty[:0]
	tab.takeDirty(func(k scoring.PairKey, st *scoring.PairState, _ uint32) {
		if *st != stateN(t, 7) {
			t.Fatalf("reused slot holds %v", st)
		}
		dirty = append(dirty, k)
	})
	if len(dirty) != 1 || dirty[0] != kNew {
		t.Fatalf("dirty = %v; want only the new pair", dirty)
	}
	count := 0
	tab.all(func(scoring.PairKey, *scoring.PairState) { count++ })
	if count != n-1 {
		t.Fatalf("all visited %d pairs; want %d", count, n-1)
	}
}

// TestPairTableAgainstMap drives the table and a Go map with the same random
// adds, updates and forgets, and checks they hold the same pairs throughout:
// the index's probing, growth and rebuilds must lose or invent nothing.
func TestPairTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := newPairTable()
	want := map[scoring.PairKey]uint32{}
	fans := make([]uuid.UUID, 3000)
	for i := range fans {
		fans[i] = uuid.New()
	}
	check := func(step int) {
		t.Helper()
		if tab.len() != len(want) {
			t.Fatalf("step %d: table holds %d pairs; want %d", step, tab.len(), len(want))
		}
		for k, n := range want {
			if st := tab.get(k); st == nil || *st != stateN(t, n) {
				t.Fatalf("step %d: pair %v holds %v; want state %d", step, k, st, n)
			}
		}
		seen := 0
		tab.all(func(k scoring.PairKey, st *scoring.PairState) {
			if n, ok := want[k]; !ok || *st != stateN(t, n) {
				t.Fatalf("step %d: all visited %v, which the table should not hold as it does", step, k)
			}
			seen++
		})
		if seen != len(want) {
			t.Fatalf("step %d: all visited %d pairs; want %d", step, seen, len(want))
		}
	}
	for step := range 20_000 {
		k := scoring.PairKey{Fan: fans[r.IntN(len(fans))], Performer: scoring.PerformerRef(r.IntN(5))}
		switch op := r.IntN(100); {
		case op < 2: // erase a tenth of the fans
			gone := map[uuid.UUID]bool{}
			for range len(fans) / 10 {
				gone[fans[r.IntN(len(fans))]] = true
			}
			dropped := 0
			for k := range want {
				if gone[k.Fan] {
					delete(want, k)
					dropped++
				}
			}
			if got := tab.forget(func(k scoring.PairKey) bool { return gone[k.Fan] }); got != dropped {
				t.Fatalf("step %d: forget dropped %d pairs; want %d", step, got, dropped)
			}
			check(step)
		default:
			n := uint32(step)
			if slot, ok := tab.lookup(k); ok {
				*tab.at(slot) = stateN(t, n)
			} else {
				if _, held := want[k]; held {
					t.Fatalf("step %d: lookup missed held pair %v", step, k)
				}
				tab.add(k, stateN(t, n))
			}
			want[k] = n
		}
		if step%5000 == 0 {
			check(step)
		}
	}
	check(-1)
}

package pipeline

import (
	"github.com/crescendo-hq/crescendo/scoring"
)

// pageBits sizes the pages of pair states: 4096 states (112 KiB) a page, so
// growing never copies the states and wastes at most one page.
const pageBits = 12

// pairTable holds a partition's pair states. The map gives a pair's slot in
// paged storage, so an event reads, updates and marks its pair dirty with one
// map lookup, where a map of states took three (read, write back, mark) and
// each is a likely cache miss on a table of a hundred thousand pairs. The map
// and the pages hold no pointers, so the garbage collector skips them.
type pairTable struct {
	slots map[scoring.PairKey]uint32
	pages [][]scoring.PairState
	// dirtyBits has a bit per slot, set while the slot is in dirty.
	dirtyBits []uint64
	dirty     []dirtyPair
	free      []uint32 // slots of forgotten pairs, for reuse
	used      uint32   // slots handed out, free ones included
}

type dirtyPair struct {
	key  scoring.PairKey
	slot uint32
	mark uint32 // given by markDirty when the pair was listed
}

func newPairTable() pairTable {
	return pairTable{slots: make(map[scoring.PairKey]uint32)}
}

// len returns the number of pairs.
func (t *pairTable) len() int { return len(t.slots) }

func (t *pairTable) at(slot uint32) *scoring.PairState {
	return &t.pages[slot>>pageBits][slot&(1<<pageBits-1)]
}

// get returns the pair's state, or nil when the pair has none.
func (t *pairTable) get(k scoring.PairKey) *scoring.PairState {
	slot, ok := t.slots[k]
	if !ok {
		return nil
	}
	return t.at(slot)
}

// lookup returns the pair's slot, and ok false when it has none yet.
func (t *pairTable) lookup(k scoring.PairKey) (uint32, bool) {
	slot, ok := t.slots[k]
	return slot, ok
}

// add stores the state of a pair that has none and returns its slot.
func (t *pairTable) add(k scoring.PairKey, st scoring.PairState) uint32 {
	var slot uint32
	if n := len(t.free); n > 0 {
		slot, t.free = t.free[n-1], t.free[:n-1]
	} else {
		slot = t.used
		t.used++
		if int(slot>>pageBits) == len(t.pages) {
			t.pages = append(t.pages, make([]scoring.PairState, 1<<pageBits))
		}
		if int(slot/64) == len(t.dirtyBits) {
			t.dirtyBits = append(t.dirtyBits, 0)
		}
	}
	*t.at(slot) = st
	t.slots[k] = slot
	return slot
}

// markDirty notes that the pair in slot changed since the last takeDirty.
// A pair not yet listed is listed with mark, which takeDirty hands back.
func (t *pairTable) markDirty(k scoring.PairKey, slot, mark uint32) {
	w, bit := slot/64, uint64(1)<<(slot%64)
	if t.dirtyBits[w]&bit == 0 {
		t.dirtyBits[w] |= bit
		t.dirty = append(t.dirty, dirtyPair{key: k, slot: slot, mark: mark})
	}
}

// takeDirty calls f with each pair changed since the last call, once each,
// in the order they were listed, with the mark each was listed with.
func (t *pairTable) takeDirty(f func(k scoring.PairKey, st *scoring.PairState, mark uint32)) {
	for _, d := range t.dirty {
		t.dirtyBits[d.slot/64] &^= uint64(1) << (d.slot % 64)
		f(d.key, t.at(d.slot), d.mark)
	}
	t.dirty = t.dirty[:0]
}

// all calls f with every pair; f may change the state in place.
func (t *pairTable) all(f func(k scoring.PairKey, st *scoring.PairState)) {
	for k, slot := range t.slots {
		f(k, t.at(slot))
	}
}

// forget drops the pairs of the given fans and returns how many it dropped.
func (t *pairTable) forget(gone func(k scoring.PairKey) bool) int {
	n := 0
	for k, slot := range t.slots {
		if !gone(k) {
			continue
		}
		delete(t.slots, k)
		t.dirtyBits[slot/64] &^= uint64(1) << (slot % 64)
		*t.at(slot) = scoring.PairState{}
		t.free = append(t.free, slot)
		n++
	}
	if n > 0 {
		kept := t.dirty[:0]
		for _, d := range t.dirty {
			if !gone(d.key) {
				kept = append(kept, d)
			}
		}
		t.dirty = kept
	}
	return n
}

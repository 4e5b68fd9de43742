package pipeline

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/crescendo-hq/crescendo/scoring"
)

// pageBits sizes the pages of pair entries: 4096 entries (192 KiB) a page, so
// growing never copies the states and wastes at most one page.
const pageBits = 12

// pairTable holds a partition's pair states. An event's pair is found through
// an open-addressing index of 8-byte entries and read beside its key in the
// paged storage: two cache lines, where a Go map keyed by the 20-byte pair
// took its control word, then its slot, then the state, each a likely miss
// on a table of a hundred thousand pairs. Neither the index nor the pages
// hold pointers, so the garbage collector skips them.
type pairTable struct {
	// index is a power-of-two array probed linearly from tag&mask. A tag is
	// the pair's 32-bit hash, so the index grows without reading the pages;
	// slot 0 means empty, other entries hold slot+1.
	index []indexEntry
	mask  uint32
	n     int // pairs held
	seed  [2]uint64
	pages [][]pairEntry
	// dirtyBits has a bit per slot, set while the slot is in dirty.
	dirtyBits []uint64
	dirty     []dirtyPair
	free      []uint32 // slots of forgotten pairs, for reuse
	used      uint32   // slots handed out, free ones included
}

type indexEntry struct {
	tag  uint32
	slot uint32 // slot+1; 0 is an empty entry
}

type pairEntry struct {
	key   scoring.PairKey
	state scoring.PairState
}

type dirtyPair struct {
	slot uint32
	mark uint32 // given by markDirty when the pair was listed
}

// minIndex is the index's size before its first growth.
const minIndex = 1 << 10

func newPairTable() pairTable {
	return pairTable{index: make([]indexEntry, minIndex), mask: minIndex - 1,
		seed: [2]uint64{rand.Uint64(), rand.Uint64()}}
}

// hash mixes the pair with the table's random seed (a multiply-fold, as in
// wyhash): fan ids are random already, but a seed keeps a crafted id from
// crowding one run of the index.
func (t *pairTable) hash(k scoring.PairKey) uint32 {
	a := binary.LittleEndian.Uint64(k.Fan[:8])
	b := binary.LittleEndian.Uint64(k.Fan[8:])
	hi, lo := bits.Mul64(a^t.seed[0], b^t.seed[1])
	hi, lo = bits.Mul64(hi^lo, uint64(k.Performer)^t.seed[0]^0x9e3779b97f4a7c15)
	return uint32(hi ^ lo)
}

// len returns the number of pairs.
func (t *pairTable) len() int { return t.n }

func (t *pairTable) entry(slot uint32) *pairEntry {
	return &t.pages[slot>>pageBits][slot&(1<<pageBits-1)]
}

func (t *pairTable) at(slot uint32) *scoring.PairState { return &t.entry(slot).state }

// get returns the pair's state, or nil when the pair has none.
func (t *pairTable) get(k scoring.PairKey) *scoring.PairState {
	slot, ok := t.lookup(k)
	if !ok {
		return nil
	}
	return t.at(slot)
}

// lookup returns the pair's slot, and ok false when it has none yet.
func (t *pairTable) lookup(k scoring.PairKey) (uint32, bool) {
	tag := t.hash(k)
	for i := tag & t.mask; ; i = (i + 1) & t.mask {
		e := t.index[i]
		if e.slot == 0 {
			return 0, false
		}
		if e.tag == tag && t.entry(e.slot-1).key == k {
			return e.slot - 1, true
		}
	}
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
			t.pages = append(t.pages, make([]pairEntry, 1<<pageBits))
		}
		if int(slot/64) == len(t.dirtyBits) {
			t.dirtyBits = append(t.dirtyBits, 0)
		}
	}
	*t.entry(slot) = pairEntry{key: k, state: st}
	// At most half full, linear probing stays at one or two entries a lookup.
	if 2*(t.n+1) > len(t.index) {
		t.rebuild(2*len(t.index), nil)
	}
	t.insert(indexEntry{tag: t.hash(k), slot: slot + 1})
	t.n++
	return slot
}

func (t *pairTable) insert(e indexEntry) {
	i := e.tag & t.mask
	for t.index[i].slot != 0 {
		i = (i + 1) & t.mask
	}
	t.index[i] = e
}

// rebuild moves the index to one of size entries, leaving out the slots keep
// refuses (nil keeps all); keep sees each held slot once.
func (t *pairTable) rebuild(size int, keep func(slot uint32) bool) {
	old := t.index
	t.index, t.mask = make([]indexEntry, size), uint32(size-1)
	for _, e := range old {
		if e.slot != 0 && (keep == nil || keep(e.slot-1)) {
			t.insert(e)
		}
	}
}

// dirtyBit locates slot's bit in dirtyBits.
func dirtyBit(slot uint32) (word uint32, bit uint64) {
	return slot / 64, uint64(1) << (slot % 64)
}

// markDirty notes that the pair in slot changed since the last takeDirty.
// A pair not yet listed is listed with mark, which takeDirty hands back.
func (t *pairTable) markDirty(slot, mark uint32) {
	w, bit := dirtyBit(slot)
	if t.dirtyBits[w]&bit == 0 {
		t.dirtyBits[w] |= bit
		t.dirty = append(t.dirty, dirtyPair{slot: slot, mark: mark})
	}
}

// takeDirty calls f with each pair changed since the last call, once each,
// in the order they were listed, with the mark each was listed with.
func (t *pairTable) takeDirty(f func(k scoring.PairKey, st *scoring.PairState, mark uint32)) {
	for _, d := range t.dirty {
		w, bit := dirtyBit(d.slot)
		t.dirtyBits[w] &^= bit
		e := t.entry(d.slot)
		f(e.key, &e.state, d.mark)
	}
	t.dirty = t.dirty[:0]
}

// all calls f with every pair; f may change the state in place.
func (t *pairTable) all(f func(k scoring.PairKey, st *scoring.PairState)) {
	for _, ie := range t.index {
		if ie.slot != 0 {
			e := t.entry(ie.slot - 1)
			f(e.key, &e.state)
		}
	}
}

// forget drops the pairs gone reports and returns how many it dropped.
func (t *pairTable) forget(gone func(k scoring.PairKey) bool) int {
	dropped := 0
	// Linear probing cannot leave holes in a run, so the index is rebuilt
	// without the dropped pairs in the same walk that finds them (erasure is
	// rare, and it walks every pair anyway).
	t.rebuild(len(t.index), func(slot uint32) bool {
		e := t.entry(slot)
		if !gone(e.key) {
			return true
		}
		w, bit := dirtyBit(slot)
		t.dirtyBits[w] &^= bit
		*e = pairEntry{}
		t.free = append(t.free, slot)
		dropped++
		return false
	})
	if dropped > 0 {
		t.n -= dropped
		// A dropped pair's dirty bit is clear; a listed pair's is set.
		kept := t.dirty[:0]
		for _, d := range t.dirty {
			if w, bit := dirtyBit(d.slot); t.dirtyBits[w]&bit != 0 {
				kept = append(kept, d)
			}
		}
		t.dirty = kept
	}
	return dropped
}

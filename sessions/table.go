package sessions

import (
	"encoding/binary"
	"iter"
	"math/bits"
	"math/rand/v2"

	"github.com/google/uuid"
)

// table maps fans to session entries by open addressing with linear probing.
// Every listen finds its fan's entry and writes it back; a Go map charged that
// a lookup and an assignment, each a likely cache miss on its control word and
// then on its slot, where this finds the entry in place with one probe that
// nearly always ends at the first slot. Slots hold no pointers, so the
// garbage collector skips them.
type table struct {
	slots []slot
	mask  uint64
	n     int
	seed  [2]uint64
	// The nil fan marks empty slots, so its entry, which a stray id could
	// still ask for, is kept aside.
	hasNil   bool
	nilEntry entry
}

type slot struct {
	fan uuid.UUID
	entry
}

// minSlots is the table's size before its first growth.
const minSlots = 64

func newTable() table {
	return table{slots: make([]slot, minSlots), mask: minSlots - 1, seed: [2]uint64{rand.Uint64(), rand.Uint64()}}
}

// home is where fan's probe run starts. Fan ids are random already, but the
// seed keeps crafted or time-ordered ids from crowding one run.
func (t *table) home(fan uuid.UUID) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(fan[:8])^t.seed[0], binary.LittleEndian.Uint64(fan[8:])^t.seed[1])
	return (hi ^ lo) & t.mask
}

// len returns the number of fans held.
func (t *table) len() int { return t.n }

// get returns fan's entry, or nil when it has none.
func (t *table) get(fan uuid.UUID) *entry {
	if fan == uuid.Nil {
		if t.hasNil {
			return &t.nilEntry
		}
		return nil
	}
	for i := t.home(fan); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.fan == fan {
			return &s.entry
		}
		if s.fan == uuid.Nil {
			return nil
		}
	}
}

// put returns fan's entry, adding a zero one when it has none, and whether it
// was there. The entry is valid until the next put.
func (t *table) put(fan uuid.UUID) (*entry, bool) {
	if fan == uuid.Nil {
		had := t.hasNil
		if !had {
			t.hasNil, t.nilEntry = true, entry{}
			t.n++
		}
		return &t.nilEntry, had
	}
	for i := t.home(fan); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.fan == fan {
			return &s.entry, true
		}
		if s.fan != uuid.Nil {
			continue
		}
		// At most half full, a probe run stays at a slot or two.
		if 2*(t.n+1) > len(t.slots) {
			t.grow()
			return t.put(fan)
		}
		s.fan, s.entry = fan, entry{}
		t.n++
		return &s.entry, false
	}
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.fan == uuid.Nil {
			continue
		}
		i := t.home(s.fan)
		for t.slots[i].fan != uuid.Nil {
			i = (i + 1) & t.mask
		}
		t.slots[i] = s
	}
}

// remove drops fan's entry and reports whether it had one. Later entries of
// the probe run move back into the gap (no tombstones), so lookups never
// pass over removed slots.
func (t *table) remove(fan uuid.UUID) bool {
	if fan == uuid.Nil {
		had := t.hasNil
		if had {
			t.hasNil = false
			t.n--
		}
		return had
	}
	i := t.home(fan)
	for t.slots[i].fan != fan {
		if t.slots[i].fan == uuid.Nil {
			return false
		}
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; t.slots[j].fan != uuid.Nil; j = (j + 1) & t.mask {
		// The entry at j may fill the gap at i only if its run starts at or
		// before i, counting around the end of the table.
		if (j-t.home(t.slots[j].fan))&t.mask >= (j-i)&t.mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot{}
	t.n--
	return true
}

// all yields every fan and its entry; the entry may be written through.
func (t *table) all() iter.Seq2[uuid.UUID, *entry] {
	return func(yield func(uuid.UUID, *entry) bool) {
		if t.hasNil && !yield(uuid.Nil, &t.nilEntry) {
			return
		}
		for i := range t.slots {
			if s := &t.slots[i]; s.fan != uuid.Nil && !yield(s.fan, &s.entry) {
				return
			}
		}
	}
}

package store

import (
	"math/bits"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/fans"
	"github.com/crescendo-hq/crescendo/pipeline"
)

// accountSlot is one linked account in an accountTable. It is 64 bytes, one
// cache line, so that a lookup that finds its account at the first probe
// touches one line of the table: every event looks up its account, and with
// a directory of millions of accounts that line is rarely cached.
type accountSlot struct {
	key accountKey
	// fan is uuid.Nil in an empty slot: a linked account always has a fan.
	fan uuid.UUID
	// scope is shared by every account with the same consent; nil covers all.
	scope *fans.Scope
	// home is the fan's home key when it is not this account's user id
	// (accounts linked after the first): most accounts carry no string.
	home string
	// locale is nil for a fan in UTC with no home.
	locale *pipeline.Locale
}

// accountTable maps account keys to accounts by open addressing with linear
// probing. A Go map costs such a lookup two or three cache misses (the
// group's control word, the slot, and for a large map the table it is in);
// keys here are already uniformly random hashes, so a key's high bits,
// scaled to the table's size, place its slot directly. The table is built
// once and only read afterwards, with exactly twice as many slots as
// accounts: probe runs stay short (a lookup reads 1.5 slots on average), and
// the table takes 128 bytes an account whatever the count, where rounding up
// to a power of two could double that for a directory of millions.
type accountTable struct {
	slots []accountSlot
}

// newAccountTable returns a table of accounts; accounts with the same key
// keep the last.
func newAccountTable(accounts []accountSlot) accountTable {
	t := accountTable{slots: make([]accountSlot, max(8, 2*len(accounts)))}
	for _, a := range accounts {
		i := t.home(a.key)
		for t.slots[i].fan != uuid.Nil && t.slots[i].key != a.key {
			i = t.after(i)
		}
		t.slots[i] = a
	}
	return t
}

// home is the slot k's probe run starts at: k[0] scaled to the table's size
// (Lemire's multiply-shift), which spreads uniform keys without a power-of-two
// size.
func (t *accountTable) home(k accountKey) int {
	hi, _ := bits.Mul64(k[0], uint64(len(t.slots)))
	return int(hi)
}

// after is the slot probed after slot i.
func (t *accountTable) after(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// get returns the account with key k.
func (t *accountTable) get(k accountKey) (*accountSlot, bool) {
	if len(t.slots) == 0 {
		return nil, false
	}
	for i := t.home(k); ; i = t.after(i) {
		s := &t.slots[i]
		if s.fan == uuid.Nil {
			return nil, false
		}
		if s.key == k {
			return s, true
		}
	}
}

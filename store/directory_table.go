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
// keys here are already uniformly random hashes, so their low bits place a
// slot directly. The table is built once and only read afterwards, and at
// most half full, so probe runs stay short.
type accountTable struct {
	slots []accountSlot
	mask  uint64
}

// newAccountTable returns a table of accounts; accounts with the same key
// keep the last.
func newAccountTable(accounts []accountSlot) accountTable {
	n := uint64(8)
	if want := uint64(2 * len(accounts)); want > n {
		n = 1 << bits.Len64(want-1)
	}
	t := accountTable{slots: make([]accountSlot, n), mask: n - 1}
	for _, a := range accounts {
		i := a.key[0] & t.mask
		for t.slots[i].fan != uuid.Nil && t.slots[i].key != a.key {
			i = (i + 1) & t.mask
		}
		t.slots[i] = a
	}
	return t
}

// get returns the account with key k.
func (t *accountTable) get(k accountKey) (*accountSlot, bool) {
	if len(t.slots) == 0 {
		return nil, false
	}
	for i := k[0] & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.fan == uuid.Nil {
			return nil, false
		}
		if s.key == k {
			return s, true
		}
	}
}

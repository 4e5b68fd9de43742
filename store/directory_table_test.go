package store

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/google/uuid"
)

func TestAccountSlotFillsOneCacheLine(t *testing.T) {
	if got := unsafe.Sizeof(accountSlot{}); got != 64 {
		t.Fatalf("accountSlot is %d bytes, want 64", got)
	}
}

// The table answers as a map of the same accounts does, for keys present and
// absent, with runs of colliding keys, a run that wraps around the end, and
// repeated keys (the last wins).
func TestAccountTableAnswersAsAMap(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 1000, 50_000} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		want := map[accountKey]uuid.UUID{}
		var accounts []accountSlot
		for i := range n {
			k := accountKey{rng.Uint64(), rng.Uint64()}
			switch i % 10 {
			case 0: // same high bits as another key: shares its probe run
				k[0] = k[0]&0xffff | 0x1234<<48
			case 2: // the last slot's run, which wraps to the first
				k[0] = ^uint64(0) - uint64(i)
			case 1: // the same key again, linked to another fan
				if len(accounts) > 0 {
					k = accounts[rng.IntN(len(accounts))].key
				}
			}
			a := accountSlot{key: k, fan: uuid.New()}
			accounts = append(accounts, a)
			want[k] = a.fan
		}
		table := newAccountTable(accounts)
		if want := max(8, 2*len(accounts)); len(table.slots) != want {
			t.Errorf("%d accounts: %d slots, want %d", n, len(table.slots), want)
		}
		for k, fan := range want {
			if got, ok := table.get(k); !ok || got.fan != fan {
				t.Fatalf("%d accounts: get(%x) = %v, %t; want %s", n, k, got, ok, fan)
			}
		}
		for range 1000 {
			k := accountKey{rng.Uint64(), rng.Uint64()}
			if _, in := want[k]; in {
				continue
			}
			if got, ok := table.get(k); ok {
				t.Fatalf("%d accounts: get(%x) found %s, want none", n, k, got.fan)
			}
		}
	}
}

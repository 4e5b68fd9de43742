package events

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// firstSpecial is special's answer: the index of the first byte of b that is
// not plain, or 8.
func firstSpecial(b []byte) int {
	return bits.TrailingZeros64(special(binary.LittleEndian.Uint64(b))) >> 3
}

func TestSpecialMatchesPlain(t *testing.T) {
	want := func(b []byte) int {
		for i, c := range b {
			if !plain[c] {
				return i
			}
		}
		return 8
	}
	// Every byte value at every position, among plain bytes and among bytes
	// that borrow (a control byte below it) or not.
	for _, fill := range []byte{'a', ' ', '~', '!'} {
		for pos := range 8 {
			for c := range 256 {
				b := []byte{fill, fill, fill, fill, fill, fill, fill, fill}
				b[pos] = byte(c)
				if got, w := firstSpecial(b), want(b); got != w {
					t.Fatalf("%q: first special byte at %d, want %d", b, got, w)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 8)
	for range 200_000 {
		for i := range b {
			// Mostly plain, with every byte value possible.
			if r.IntN(4) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		if got, w := firstSpecial(b), want(b); got != w {
			t.Fatalf("%q: first special byte at %d, want %d", b, got, w)
		}
	}
}

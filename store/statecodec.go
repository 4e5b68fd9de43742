package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/sessions"
)

// A state chunk is a version byte followed by entries, each a kind byte and its
// fields; later entries for the same key replace earlier ones, within a chunk
// and across the chunks of a partition's log.
//
// Version 3 names a pair's performer by its place in the chunk's own list of
// performers (a uvarint, 0 for a name first seen here, which then follows),
// and holds pair states in their compact form: a pair takes about 30 bytes
// instead of 57, and the log a checkpoint writes, which Postgres pays for
// per byte, shrinks by half. Version 2 chunks, which spell every name out,
// are still read.
const (
	chunkVersion byte = 3
	chunkV2      byte = 2
	entryPair    byte = 1
	entrySession byte = 2
	entryFan     byte = 3
	entryRouted  byte = 4 // a source partition and its last routed offset applied; no fan id
)

var errChunkCorrupt = errors.New("state chunk corrupt")

// chunkState is what a chunk carries.
type chunkState struct {
	pairs map[pipeline.PairKey]scoring.PairState
	// pairList is encoded after pairs; decoding fills pairs only.
	pairList []pipeline.PairEntry
	fans     map[uuid.UUID]scoring.FanState
	sessions map[uuid.UUID]sessions.Session
	routed   map[int32]int64
}

func encodeChunk(s chunkState) []byte {
	b := make([]byte, 0, 1+(len(s.pairs)+len(s.pairList))*32+len(s.sessions)*32+len(s.fans)*28)
	b = append(b, chunkVersion)
	names := map[string]uint64{}
	for k, st := range s.pairs {
		b = appendPair(b, names, k, st)
	}
	for _, e := range s.pairList {
		b = appendPair(b, names, e.Key, e.State)
	}
	for f, fs := range s.fans {
		b = append(b, entryFan)
		b = append(b, f[:]...)
		raw, _ := fs.MarshalBinary()
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	for f, ss := range s.sessions {
		b = append(b, entrySession)
		b = append(b, f[:]...)
		b = binary.AppendVarint(b, ss.Start.UnixNano())
		b = binary.AppendVarint(b, ss.Last.UnixNano())
	}
	for src, off := range s.routed {
		b = append(b, entryRouted)
		b = binary.AppendUvarint(b, uint64(src))
		b = binary.AppendVarint(b, off)
	}
	return b
}

// The state's length is one uvarint byte: its compact form is shorter than 128.
var _ [127 - scoring.MaxPairStateSize]struct{}

func appendPair(b []byte, names map[string]uint64, k pipeline.PairKey, st scoring.PairState) []byte {
	b = append(b, entryPair)
	b = append(b, k.Fan[:]...)
	if i, ok := names[k.Performer]; ok {
		b = binary.AppendUvarint(b, i)
	} else {
		names[k.Performer] = uint64(len(names) + 1)
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(k.Performer)))
		b = append(b, k.Performer...)
	}
	at := len(b)
	b, _ = st.AppendBinary(append(b, 0)) // cannot fail
	b[at] = byte(len(b) - at - 1)
	return b
}

// decodeChunk applies a chunk's entries to s.
func decodeChunk(b []byte, s chunkState) error {
	if len(b) == 0 || (b[0] != chunkVersion && b[0] != chunkV2) {
		return fmt.Errorf("%w: unknown version", errChunkCorrupt)
	}
	r := chunkReader{b: b[1:]}
	var names []string // version 3's performers, in order of first appearance
	for len(r.b) > 0 && r.err == nil {
		kind := r.byte()
		if kind == entryRouted {
			src, off := r.uvarint(), r.varint()
			if r.err == nil {
				if src > math.MaxInt32 {
					return fmt.Errorf("%w: source partition %d", errChunkCorrupt, src)
				}
				s.routed[int32(src)] = off
			}
			continue
		}
		var f uuid.UUID
		copy(f[:], r.bytes(16))
		switch kind {
		case entryPair:
			k := pipeline.PairKey{Fan: f}
			if b[0] == chunkV2 {
				k.Performer = string(r.bytes(int(r.uvarint())))
			} else if i := r.uvarint(); i == 0 {
				k.Performer = string(r.bytes(int(r.uvarint())))
				names = append(names, k.Performer)
			} else if i <= uint64(len(names)) {
				k.Performer = names[i-1]
			} else if r.err == nil {
				return fmt.Errorf("%w: performer %d of %d", errChunkCorrupt, i, len(names))
			}
			var st scoring.PairState
			raw := r.bytes(int(r.uvarint()))
			if r.err == nil {
				if err := st.UnmarshalBinary(raw); err != nil {
					return fmt.Errorf("%w: %w", errChunkCorrupt, err)
				}
				s.pairs[k] = st
			}
		case entryFan:
			var fs scoring.FanState
			raw := r.bytes(int(r.uvarint()))
			if r.err == nil {
				if err := fs.UnmarshalBinary(raw); err != nil {
					return fmt.Errorf("%w: %w", errChunkCorrupt, err)
				}
				s.fans[f] = fs
			}
		case entrySession:
			ss := sessions.Session{Start: time.Unix(0, r.varint()).UTC(), Last: time.Unix(0, r.varint()).UTC()}
			if r.err == nil {
				s.sessions[f] = ss
			}
		default:
			return fmt.Errorf("%w: unknown entry kind %d", errChunkCorrupt, kind)
		}
	}
	return r.err
}

type chunkReader struct {
	b   []byte
	err error
}

func (r *chunkReader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated", errChunkCorrupt)
	}
	r.b = nil
}

func (r *chunkReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *chunkReader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

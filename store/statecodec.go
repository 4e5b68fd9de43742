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
const (
	chunkVersion byte = 2
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
	b := make([]byte, 0, 1+(len(s.pairs)+len(s.pairList))*56+len(s.sessions)*32+len(s.fans)*28)
	b = append(b, chunkVersion)
	for k, st := range s.pairs {
		b = appendPair(b, k, st)
	}
	for _, e := range s.pairList {
		b = appendPair(b, e.Key, e.State)
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

func appendPair(b []byte, k pipeline.PairKey, st scoring.PairState) []byte {
	b = append(b, entryPair)
	b = append(b, k.Fan[:]...)
	b = binary.AppendUvarint(b, uint64(len(k.Performer)))
	b = append(b, k.Performer...)
	raw, _ := st.MarshalBinary() // fixed-size, cannot fail
	b = binary.AppendUvarint(b, uint64(len(raw)))
	return append(b, raw...)
}

// decodeChunk applies a chunk's entries to s.
func decodeChunk(b []byte, s chunkState) error {
	if len(b) == 0 || b[0] != chunkVersion {
		return fmt.Errorf("%w: unknown version", errChunkCorrupt)
	}
	r := chunkReader{b: b[1:]}
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
			k := pipeline.PairKey{Fan: f, Performer: string(r.bytes(int(r.uvarint())))}
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

package store

import (
	"encoding/binary"
	"errors"
	"fmt"
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
)

var errChunkCorrupt = errors.New("state chunk corrupt")

// chunkState is what a chunk carries.
type chunkState struct {
	pairs    map[pipeline.PairKey]scoring.PairState
	fans     map[uuid.UUID]scoring.FanState
	sessions map[uuid.UUID]sessions.Session
}

func encodeChunk(s chunkState) []byte {
	b := make([]byte, 0, 1+len(s.pairs)*56+len(s.sessions)*32+len(s.fans)*28)
	b = append(b, chunkVersion)
	for k, st := range s.pairs {
		b = append(b, entryPair)
		b = append(b, k.Fan[:]...)
		b = binary.AppendUvarint(b, uint64(len(k.Performer)))
		b = append(b, k.Performer...)
		raw, _ := st.MarshalBinary() // fixed-size, cannot fail
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
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
	return b
}

// decodeChunk applies a chunk's entries to s.
func decodeChunk(b []byte, s chunkState) error {
	if len(b) == 0 || b[0] != chunkVersion {
		return fmt.Errorf("%w: unknown version", errChunkCorrupt)
	}
	r := chunkReader{b: b[1:]}
	for len(r.b) > 0 && r.err == nil {
		kind := r.byte()
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

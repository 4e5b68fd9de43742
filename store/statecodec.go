package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/index"
	"github.com/crescendo-hq/crescendo/sessions"
)

// A state chunk is a version byte followed by entries, each a kind byte and
// its fields as varints; later entries for the same key replace earlier ones,
// within a chunk and across the chunks of a partition's log.
const (
	chunkVersion   byte = 1
	entryListening byte = 1
	entrySession   byte = 2
)

var errChunkCorrupt = errors.New("state chunk corrupt")

func encodeChunk(listening map[index.Key]index.Counter, sess map[uuid.UUID]sessions.Session) []byte {
	b := make([]byte, 0, 1+len(listening)*48+len(sess)*32)
	b = append(b, chunkVersion)
	for k, c := range listening {
		b = append(b, entryListening)
		b = append(b, k.Fan[:]...)
		b = binary.AppendUvarint(b, uint64(len(k.Performer)))
		b = append(b, k.Performer...)
		b = binary.AppendVarint(b, int64(c.LastDay))
		for _, s := range c.Seconds {
			b = binary.AppendUvarint(b, uint64(s))
		}
	}
	for f, s := range sess {
		b = append(b, entrySession)
		b = append(b, f[:]...)
		b = binary.AppendVarint(b, s.Start.UnixNano())
		b = binary.AppendVarint(b, s.Last.UnixNano())
	}
	return b
}

// decodeChunk applies a chunk's entries to the maps.
func decodeChunk(b []byte, listening map[index.Key]index.Counter, sess map[uuid.UUID]sessions.Session) error {
	if len(b) == 0 || b[0] != chunkVersion {
		return fmt.Errorf("%w: unknown version", errChunkCorrupt)
	}
	r := chunkReader{b: b[1:]}
	for len(r.b) > 0 && r.err == nil {
		kind := r.byte()
		switch kind {
		case entryListening:
			var k index.Key
			copy(k.Fan[:], r.bytes(16))
			k.Performer = string(r.bytes(int(r.uvarint())))
			var c index.Counter
			c.LastDay = int32(r.varint())
			for i := range c.Seconds {
				c.Seconds[i] = uint32(r.uvarint())
			}
			if r.err == nil {
				listening[k] = c
			}
		case entrySession:
			var f uuid.UUID
			copy(f[:], r.bytes(16))
			s := sessions.Session{Start: time.Unix(0, r.varint()).UTC(), Last: time.Unix(0, r.varint()).UTC()}
			if r.err == nil {
				sess[f] = s
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

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
// per byte, shrinks by half.
//
// Version 4 drops a fan id that repeats the previous entry's: a kind byte
// with sameFan set carries none. A snapshot groups each fan's pairs, facts
// and session together, so a fan with nine pairs spells its id once rather
// than ten times, and a session's last listen is written as the time since
// its start. A delta writes each session next to the pair the same event
// changed. Versions 2 and 3, which spell every fan out (2 spells every
// name out too), are still read.
const (
	chunkVersion byte = 4
	chunkV3      byte = 3
	chunkV2      byte = 2
	entryPair    byte = 1
	entrySession byte = 2
	entryFan     byte = 3
	entryRouted  byte = 4 // a source partition and its last routed offset applied; no fan id
	// sameFan marks, in a version 4 kind byte, an entry for the previous entry's fan.
	sameFan byte = 0x80
)

var errChunkCorrupt = errors.New("state chunk corrupt")

// chunkState is what a chunk carries.
type chunkState struct {
	pairs map[pipeline.PairKey]scoring.PairState
	// pairList is encoded after pairs; decoding fills pairs only.
	pairList []pipeline.PairEntry
	fans     map[uuid.UUID]scoring.FanState
	sessions map[uuid.UUID]sessions.Session
	// sessionList is encoded among pairList, each session before the pair
	// its Pairs names, where its fan's id is then written once for both;
	// decoding fills sessions only.
	sessionList []pipeline.SessionEntry
	routed      map[int32]int64
}

func encodeChunk(s chunkState) []byte { return encodeChunkAs(chunkVersion, s) }

// encodeChunkAs encodes s in the given version, chunkVersion or chunkV3:
// a release that reads only version 3 can then load what this one wrote,
// which a rolling upgrade from it needs.
func encodeChunkAs(version byte, s chunkState) []byte {
	b := make([]byte, 0, 1+(len(s.pairs)+len(s.pairList))*32+(len(s.sessions)+len(s.sessionList))*16+len(s.fans)*28)
	b = append(b, version)
	e := chunkEncoder{b: b, names: map[string]uint64{}, v3: version == chunkV3}
	if len(s.pairs) > 0 {
		e.grouped(s)
	} else {
		// A delta keeps the order things changed in, with each session where
		// the pipeline placed it among the pairs: a listen's session lands
		// beside its pair and shares its fan id, without the cost of sorting
		// the delta by fan (about what the shorter chunk would save).
		sl := s.sessionList
		for i, p := range s.pairList {
			for len(sl) > 0 && sl[0].Pairs <= i {
				e.session(sl[0].Fan, sl[0].Session)
				sl = sl[1:]
			}
			e.pair(p.Key, p.State)
		}
		for _, ss := range sl {
			e.session(ss.Fan, ss.Session)
		}
		for f, fs := range s.fans {
			e.fan(f, fs)
		}
		for f, ss := range s.sessions {
			e.session(f, ss)
		}
	}
	for src, off := range s.routed {
		e.b = append(e.b, entryRouted)
		e.b = binary.AppendUvarint(e.b, uint64(src))
		e.b = binary.AppendVarint(e.b, off)
	}
	return e.b
}

// chunkEncoder appends entries, leaving out fan ids that repeat.
type chunkEncoder struct {
	b     []byte
	names map[string]uint64
	last  uuid.UUID
	any   bool // whether an entry has named a fan yet
	v3    bool // writing version 3: every fan spelled out, sessions' times absolute
}

// head appends an entry's kind and, unless it repeats, its fan.
func (e *chunkEncoder) head(kind byte, f uuid.UUID) {
	if e.any && f == e.last && !e.v3 {
		e.b = append(e.b, kind|sameFan)
		return
	}
	e.b = append(e.b, kind)
	e.b = append(e.b, f[:]...)
	e.last, e.any = f, true
}

func (e *chunkEncoder) pair(k pipeline.PairKey, st scoring.PairState) {
	e.head(entryPair, k.Fan)
	if i, ok := e.names[k.Performer]; ok {
		e.b = binary.AppendUvarint(e.b, i)
	} else {
		e.names[k.Performer] = uint64(len(e.names) + 1)
		e.b = append(e.b, 0)
		e.b = binary.AppendUvarint(e.b, uint64(len(k.Performer)))
		e.b = append(e.b, k.Performer...)
	}
	at := len(e.b)
	e.b, _ = st.AppendBinary(append(e.b, 0)) // cannot fail
	e.b[at] = byte(len(e.b) - at - 1)
}

func (e *chunkEncoder) fan(f uuid.UUID, fs scoring.FanState) {
	e.head(entryFan, f)
	raw, _ := fs.MarshalBinary()
	e.b = binary.AppendUvarint(e.b, uint64(len(raw)))
	e.b = append(e.b, raw...)
}

func (e *chunkEncoder) session(f uuid.UUID, ss sessions.Session) {
	e.head(entrySession, f)
	start, last := ss.Start.UnixNano(), ss.Last.UnixNano()
	if !e.v3 {
		last -= start
	}
	e.b = binary.AppendVarint(e.b, start)
	e.b = binary.AppendVarint(e.b, last)
}

// grouped appends a chunk's fan-keyed entries fan by fan. A fan's pairs keep
// their order (pairs before pairList), so a later entry for a key still wins.
func (e *chunkEncoder) grouped(s chunkState) {
	type group struct {
		id      uuid.UUID
		pairs   []int32 // into all
		hasFan  bool
		fan     scoring.FanState
		hasSess bool
		session sessions.Session
	}
	all := make([]pipeline.PairEntry, 0, len(s.pairs)+len(s.pairList))
	for k, st := range s.pairs {
		all = append(all, pipeline.PairEntry{Key: k, State: st})
	}
	all = append(all, s.pairList...)
	index := make(map[uuid.UUID]int32, len(s.fans)+len(s.sessions)+len(all)/4)
	var groups []group
	of := func(f uuid.UUID) *group {
		g, ok := index[f]
		if !ok {
			g = int32(len(groups))
			index[f] = g
			groups = append(groups, group{id: f})
		}
		return &groups[g]
	}
	for i, p := range all {
		g := of(p.Key.Fan)
		g.pairs = append(g.pairs, int32(i))
	}
	for f, fs := range s.fans {
		g := of(f)
		g.hasFan, g.fan = true, fs
	}
	for f, ss := range s.sessions {
		g := of(f)
		g.hasSess, g.session = true, ss
	}
	for i := range groups {
		g := &groups[i]
		for _, j := range g.pairs {
			e.pair(all[j].Key, all[j].State)
		}
		if g.hasFan {
			e.fan(g.id, g.fan)
		}
		if g.hasSess {
			e.session(g.id, g.session)
		}
	}
}

// The state's length is one uvarint byte: its compact form is shorter than 128.
var _ [127 - scoring.MaxPairStateSize]struct{}

// decodeChunk applies a chunk's entries to s.
func decodeChunk(b []byte, s chunkState) error {
	if len(b) == 0 || (b[0] != chunkVersion && b[0] != chunkV3 && b[0] != chunkV2) {
		return fmt.Errorf("%w: unknown version", errChunkCorrupt)
	}
	r := chunkReader{b: b[1:]}
	var names []string // the performers of versions 3 and 4, in order of first appearance
	var f uuid.UUID
	named := false // whether an entry has named a fan yet
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
		switch {
		case b[0] == chunkVersion && kind&sameFan != 0:
			if !named {
				return fmt.Errorf("%w: a repeated fan before any fan", errChunkCorrupt)
			}
			kind &^= sameFan
		default:
			copy(f[:], r.bytes(16))
			named = true
		}
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
			start, last := r.varint(), r.varint()
			if b[0] == chunkVersion {
				last += start
			}
			ss := sessions.Session{Start: time.Unix(0, start).UTC(), Last: time.Unix(0, last).UTC()}
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

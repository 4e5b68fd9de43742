package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/events"
)

// Epoch is the origin of the compact state's clock. Times are kept as whole
// seconds since Epoch in a uint32, which lasts until 2156; times before it
// count as Epoch and times after 2156 as the end of that range.
var Epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

var epochUnix = Epoch.Unix()

// stamp converts t to the compact clock.
func stamp(t time.Time) uint32 {
	s := t.Unix() - epochUnix
	switch {
	case s < 0:
		return 0
	case s > maxSeconds:
		return maxSeconds
	}
	return uint32(s)
}

// unstamp converts a compact time back.
func unstamp(s uint32) time.Time {
	return time.Unix(epochUnix+int64(s), 0).UTC()
}

// decay returns the factor a point loses between from and to: 2^(-Δ/halfLife).
// It is 1 without a half-life and when to is not after from, so the index
// never grows by looking back in time.
func decay(halfLife time.Duration, from, to uint32) float64 {
	if halfLife <= 0 || to <= from {
		return 1
	}
	return math.Exp2(-float64(to-from) / halfLife.Seconds())
}

// Bits of PairState.flags.
const (
	flagFollowed  uint8 = 1 << iota // the follow point was given
	flagStreaming                   // period and listened hold a period
)

// PairState is the index state of one (fan, performer) pair.
//
// It holds aggregates, never events, so that millions of pairs fit in memory
// (28 bytes and no pointers, so a map of them costs the garbage collector
// nothing to scan; 78 to 117 bytes a pair in a map with its key, see
// BenchmarkPairMemory). What each event contributed goes out of Apply as
// Contribution records for the caller to store; explanations read those.
//
// The decayed sums (score, posts) are expressed at time ref: reading them
// at a later time multiplies by the decay in between (lazily, in Value), and
// Recompute folds that decay in and moves ref forward. The zero value is an
// empty pair. A PairState is not safe for concurrent use.
type PairState struct {
	ref      uint32  // compact time score and posts are expressed at
	score    float32 // index points at ref, without the human point
	posts    float32 // decayed count of posts about the show at ref
	period   uint32  // start of the streaming period listened counts
	listened uint32  // seconds listened in that period
	show     uint32  // hash of the last attended show, to count each once
	visitDay uint16  // 1 + the day (since Epoch) of the last counted visit; 0 = none
	streamed uint8   // streaming points given in the period
	flags    uint8
}

// Value returns the pair's index points at time at, decayed under p's
// half-life, without the human point (see Scorer.Index). A time before the
// pair's last event reads the value at that event.
func (st *PairState) Value(p Profile, at time.Time) float64 {
	return float64(st.score) * decay(p.HalfLife, st.ref, stamp(at))
}

// Recompute folds the decay up to at into the stored sums, so that stored
// values stay meaningful to readers that do not decay (reports, SQL) and
// float32 sums keep their precision. Value gives the same answer before and
// after, up to rounding. Times before the last update change nothing.
func (st *PairState) Recompute(p Profile, at time.Time) {
	st.advance(p.HalfLife, stamp(at))
}

func (st *PairState) advance(halfLife time.Duration, to uint32) {
	if to <= st.ref {
		return
	}
	if f := decay(halfLife, st.ref, to); f != 1 {
		st.score = float32(float64(st.score) * f)
		st.posts = float32(float64(st.posts) * f)
	}
	st.ref = to
}

// Updated returns the time the state's sums are expressed at: its newest
// event or recomputation. The zero state returns Epoch.
func (st *PairState) Updated() time.Time { return unstamp(st.ref) }

// Zero reports whether the state holds nothing, so a caller can skip
// storing or drop it.
func (st *PairState) Zero() bool { return *st == PairState{} }

// pairStateSize is the length of the fixed binary form (version 1): a
// version byte and the fields. It is still read; AppendBinary writes the
// compact form.
const pairStateSize = 1 + 4*6 + 2 + 1 + 1

const stateVersion = 1

// compactStateVersion marks the compact form: a version byte, a byte whose
// bits say which fields follow, and only those fields, integers as uvarints.
// Most states leave most fields zero (a follow sets two), so a state takes
// about 12 bytes instead of 29; the state log a checkpoint writes shrinks
// by as much.
const compactStateVersion = 2

// MaxPairStateSize bounds the length of AppendBinary's output.
const MaxPairStateSize = 3 + 5 + 4 + 4 + 5 + 5 + 4 + 3 + 1 // version, mask and flags bytes, then every field at its longest

// Bits of the compact form's mask, one per field that follows.
const (
	hasRef = 1 << iota
	hasScore
	hasPosts
	hasPeriod
	hasListened
	hasShow
	hasVisitDay
	hasStreamed
)

// MarshalBinary encodes the state for durable storage in the compact form
// AppendBinary writes; the first byte is a version.
func (st PairState) MarshalBinary() ([]byte, error) {
	return st.AppendBinary(make([]byte, 0, MaxPairStateSize))
}

// AppendBinary appends the compact form of the state to b (the
// encoding.BinaryAppender method, so that a log of many states need not
// allocate one slice per state).
func (st PairState) AppendBinary(b []byte) ([]byte, error) {
	var mask byte
	for bit, set := range [...]bool{st.ref != 0, st.score != 0, st.posts != 0, st.period != 0, st.listened != 0, st.show != 0, st.visitDay != 0, st.streamed != 0} {
		if set {
			mask |= 1 << bit
		}
	}
	b = append(b, compactStateVersion, mask, st.flags)
	if mask&hasRef != 0 {
		b = binary.AppendUvarint(b, uint64(st.ref))
	}
	if mask&hasScore != 0 {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(st.score))
	}
	if mask&hasPosts != 0 {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(st.posts))
	}
	if mask&hasPeriod != 0 {
		b = binary.AppendUvarint(b, uint64(st.period))
	}
	if mask&hasListened != 0 {
		b = binary.AppendUvarint(b, uint64(st.listened))
	}
	if mask&hasShow != 0 {
		b = binary.LittleEndian.AppendUint32(b, st.show) // a hash: a uvarint would only grow it
	}
	if mask&hasVisitDay != 0 {
		b = binary.AppendUvarint(b, uint64(st.visitDay))
	}
	if mask&hasStreamed != 0 {
		b = append(b, st.streamed)
	}
	return b, nil
}

var errPairState = errors.New("scoring: not a pair state")

// UnmarshalBinary decodes either binary form: the compact one and the fixed
// one of version 1 that older state logs hold.
func (st *PairState) UnmarshalBinary(b []byte) error {
	if len(b) == pairStateSize && b[0] == stateVersion {
		le := binary.LittleEndian
		*st = PairState{
			ref:      le.Uint32(b[1:]),
			score:    math.Float32frombits(le.Uint32(b[5:])),
			posts:    math.Float32frombits(le.Uint32(b[9:])),
			period:   le.Uint32(b[13:]),
			listened: le.Uint32(b[17:]),
			show:     le.Uint32(b[21:]),
			visitDay: le.Uint16(b[25:]),
			streamed: b[27],
			flags:    b[28],
		}
		if !finite(st.score) || !finite(st.posts) {
			*st = PairState{}
			return errPairState
		}
		return nil
	}
	if len(b) < 3 || b[0] != compactStateVersion {
		return errPairState
	}
	mask, r := b[1], compactReader{b: b[3:]}
	out := PairState{flags: b[2]}
	if mask&hasRef != 0 {
		out.ref = r.uint32()
	}
	if mask&hasScore != 0 {
		out.score = math.Float32frombits(r.fixed32())
	}
	if mask&hasPosts != 0 {
		out.posts = math.Float32frombits(r.fixed32())
	}
	if mask&hasPeriod != 0 {
		out.period = r.uint32()
	}
	if mask&hasListened != 0 {
		out.listened = r.uint32()
	}
	if mask&hasShow != 0 {
		out.show = r.fixed32()
	}
	if mask&hasVisitDay != 0 {
		v := r.uint32()
		if v > math.MaxUint16 {
			r.bad = true
		}
		out.visitDay = uint16(v)
	}
	if mask&hasStreamed != 0 {
		if len(r.b) == 0 {
			r.bad = true
		} else {
			out.streamed, r.b = r.b[0], r.b[1:]
		}
	}
	// A field present but zero would encode differently: refuse it, so that
	// each state has one form and what decodes re-encodes byte for byte.
	if r.bad || len(r.b) != 0 || !finite(out.score) || !finite(out.posts) {
		return errPairState
	}
	if again, _ := out.AppendBinary(nil); len(again) != len(b) {
		return errPairState
	}
	*st = out
	return nil
}

// finite reports whether a stored sum is a number: scoring never makes a NaN
// or an infinity, so one read back means the bytes are not a state.
func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

type compactReader struct {
	b   []byte
	bad bool
}

func (r *compactReader) uint32() uint32 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > math.MaxUint32 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

func (r *compactReader) fixed32() uint32 {
	if len(r.b) < 4 {
		r.bad, r.b = true, nil
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// FanState holds the per-fan facts that scoring reads for every performer:
// the latest friend count from a social_graph event. It lives beside the
// pairs, once per fan, so that a graph update is one write, not one per
// performer. The zero value is a fan with no graph seen.
type FanState struct {
	friends uint32 // latest friend_count, clamped to uint32
	at      uint32 // compact time of the social_graph it came from
	known   bool
	// Bots are the fan's live bot signals (F13): purchase rate, travel,
	// crossings above upper thresholds. Per fan, like the friend count.
	Bots bots.State
}

// Apply records a social_graph event. Only the newest graph counts: an
// older one arriving late is ignored, so replaying in any order ends in the
// same state. It returns the fact to store for explanations and whether the
// state changed.
func (f *FanState) Apply(ev events.Event) (FanFact, bool) {
	g := ev.SocialGraph
	if g == nil {
		return FanFact{}, false
	}
	at := stamp(ev.Time)
	if f.known && at < f.at {
		return FanFact{}, false
	}
	f.friends = uint32(min(max(g.FriendCount, 0), math.MaxUint32))
	f.at = at
	f.known = true
	return FanFact{FriendCount: g.FriendCount, EventID: eventID(ev), At: ev.Time}, true
}

// FriendCount returns the latest friend count and whether any graph was seen.
func (f *FanState) FriendCount() (int64, bool) { return int64(f.friends), f.known }

// MarshalBinary encodes the state in 10 bytes for durable storage, and 48
// more once the fan has bot signals.
func (f FanState) MarshalBinary() ([]byte, error) {
	b := []byte{stateVersion}
	b = binary.LittleEndian.AppendUint32(b, f.friends)
	b = binary.LittleEndian.AppendUint32(b, f.at)
	if f.known {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	if f.Bots == (bots.State{}) {
		return b, nil
	}
	return f.Bots.AppendBinary(b)
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (f *FanState) UnmarshalBinary(b []byte) error {
	if len(b) < 10 || b[0] != stateVersion || b[9] > 1 {
		return errors.New("scoring: not a version 1 fan state")
	}
	*f = FanState{friends: binary.LittleEndian.Uint32(b[1:]), at: binary.LittleEndian.Uint32(b[5:]), known: b[9] == 1}
	if len(b) == 10 {
		return nil
	}
	if err := f.Bots.UnmarshalBinary(b[10:]); err != nil {
		return fmt.Errorf("scoring: decoding fan state: %w", err)
	}
	return nil
}

// HumanPoints returns the human-account point of F13 under p: Weights.Human
// once the fan's latest friend count reaches MinFriends. A fan with no
// social graph gets nothing: an unknown account is not known to be human.
// The point does not decay: it states what the account looks like now.
func HumanPoints(p Profile, f *FanState) float64 {
	if f == nil || !f.known || int64(f.friends) < int64(p.MinFriends) {
		return 0
	}
	return p.Weights.Human
}

// PerformerRef is a performer id interned to a number, so that a pair key
// is 20 bytes instead of carrying a string.
type PerformerRef uint32

// PairKey is a compact map key for a (fan, performer) pair.
type PairKey struct {
	Fan       uuid.UUID
	Performer PerformerRef
}

// Interner hands out PerformerRefs. Refs only ever grow and are never
// reused, so a partition can keep one Interner while the Scorer is rebuilt
// as profiles change. Refs are process-local: store performer ids, not refs.
// Not safe for concurrent use.
type Interner struct {
	refs map[string]PerformerRef
	ids  []string
}

// Intern returns id's ref, assigning the next one on first sight.
func (in *Interner) Intern(id string) PerformerRef {
	if r, ok := in.refs[id]; ok {
		return r
	}
	if in.refs == nil {
		in.refs = make(map[string]PerformerRef)
	}
	r := PerformerRef(len(in.ids))
	in.refs[id] = r
	in.ids = append(in.ids, id)
	return r
}

// Lookup returns id's ref if it has one.
func (in *Interner) Lookup(id string) (PerformerRef, bool) {
	r, ok := in.refs[id]
	return r, ok
}

// ID returns the performer id of r, or "" for a ref this Interner never gave.
func (in *Interner) ID(r PerformerRef) string {
	if int(r) < len(in.ids) {
		return in.ids[r]
	}
	return ""
}

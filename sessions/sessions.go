// Package sessions tracks fans' live listening sessions (F8): a session is live
// while listen events keep arriving less than a gap apart. Time is the events'
// own time, so replaying the same events gives the same sessions.
package sessions

import (
	"time"

	"github.com/google/uuid"
)

// DefaultGap is how long a session stays live after the last listen.
const DefaultGap = 30 * time.Minute

// Session is one fan's current or last listening session.
type Session struct {
	Start time.Time
	Last  time.Time
}

// Tracker holds the sessions of one partition's fans. It is not safe for
// concurrent use: a partition has one owner at a time.
type Tracker struct {
	gap      int64 // nanoseconds
	sessions table
	// dirty lists the sessions changed since TakeDirty, with their latest
	// times, so that TakeDirty reads no map: looking each fan up again cost
	// a checkpoint a likely cache miss per fan. An entry is listed while its
	// gen is the tracker's; TakeDirty moves gen on instead of visiting them.
	dirty []dirtySession
	gen   uint32
}

// entry keeps the times as Unix nanoseconds inside the table's slot: a lookup
// then reads no memory beyond the slot, where a pointer to a heap entry cost
// the event path a cache miss per listen. Event times are after 1970 and
// at most minutes ahead of now, so they fit.
type entry struct {
	start, last int64
	gen, idx    uint32 // listed at dirty[idx] while gen is the tracker's
}

type dirtySession struct {
	fan         uuid.UUID
	start, last int64
	gone        bool // forgotten since it was listed
}

// liveAt is the one liveness rule: at (Unix nanoseconds) falls in the
// session or less than gap after its last listen.
func (e entry) liveAt(at, gap int64) bool {
	return at >= e.start && at-e.last <= gap
}

func (e entry) session() Session {
	return Session{Start: time.Unix(0, e.start).UTC(), Last: time.Unix(0, e.last).UTC()}
}

// NewTracker returns a tracker; a gap <= 0 means DefaultGap.
func NewTracker(gap time.Duration) *Tracker {
	if gap <= 0 {
		gap = DefaultGap
	}
	return &Tracker{gap: int64(gap), sessions: newTable(), gen: 1}
}

// Load puts a session read from durable storage; it is not marked dirty
// (unless it already was).
func (t *Tracker) Load(fan uuid.UUID, s Session) {
	e, _ := t.sessions.put(fan)
	e.start, e.last = s.Start.UnixNano(), s.Last.UnixNano()
	if e.gen == t.gen {
		t.dirty[e.idx].start, t.dirty[e.idx].last = e.start, e.last
	}
}

// Listen records a listen at time at and reports whether it started a new session.
// A listen older than the session's last one (events arrive out of order) extends
// the session backwards only when it falls within the gap.
func (t *Tracker) Listen(fan uuid.UUID, at time.Time) (s Session, started bool) {
	n := at.UnixNano()
	e, ok := t.sessions.put(fan)
	switch {
	case !ok:
		e.start, e.last = n, n
		started = true
	case n > e.last:
		if n-e.last > t.gap {
			e.start, e.last = n, n
			started = true
		} else {
			e.last = n
		}
	case n < e.start && e.start-n <= t.gap:
		e.start = n
	}
	if e.gen != t.gen {
		e.gen, e.idx = t.gen, uint32(len(t.dirty))
		t.dirty = append(t.dirty, dirtySession{fan: fan})
	}
	t.dirty[e.idx].start, t.dirty[e.idx].last = e.start, e.last
	return e.session(), started
}

// Live reports whether the fan's session is live at time at.
func (t *Tracker) Live(fan uuid.UUID, at time.Time) bool {
	_, live := t.Status(fan, at)
	return live
}

// Status returns the fan's session, if any, and whether it is live at time
// at, in one lookup.
func (t *Tracker) Status(fan uuid.UUID, at time.Time) (s Session, live bool) {
	e := t.sessions.get(fan)
	if e == nil {
		return Session{}, false
	}
	return e.session(), e.liveAt(at.UnixNano(), t.gap)
}

// LiveAt reports whether s, a session this tracker returned, is live at time at.
func (t *Tracker) LiveAt(s Session, at time.Time) bool {
	return entry{start: s.Start.UnixNano(), last: s.Last.UnixNano()}.liveAt(at.UnixNano(), t.gap)
}

// Get returns the fan's session, if any.
func (t *Tracker) Get(fan uuid.UUID) (Session, bool) {
	e := t.sessions.get(fan)
	if e == nil {
		return Session{}, false
	}
	return e.session(), true
}

// Change is a session changed since the last TakeDirty.
type Change struct {
	Fan uuid.UUID
	Session
	// Seq is the change's place in the order the sessions were first
	// changed, counting those forgotten since: Listed returned Seq just
	// before it was listed. A caller can tell from it what else changed
	// before or after, to write a fan's changes side by side.
	Seq int
}

// Listed returns how many sessions were listed as changed since the last
// TakeDirty, forgotten ones included: the Seq of the next one listed.
func (t *Tracker) Listed() int { return len(t.dirty) }

// TakeDirty returns the sessions changed since the last call, in the order
// they were first changed, and forgets them.
func (t *Tracker) TakeDirty() []Change {
	out := make([]Change, 0, len(t.dirty))
	for i, d := range t.dirty {
		if !d.gone {
			out = append(out, Change{Fan: d.fan, Session: entry{start: d.start, last: d.last}.session(), Seq: i})
		}
	}
	t.dirty = t.dirty[:0]
	if t.gen++; t.gen == 0 {
		// After 2^32 checkpoints an entry unchanged since the first would
		// look listed again: unlist them all once.
		for _, e := range t.sessions.all() {
			e.gen = 0
		}
		t.gen = 1
	}
	return out
}

// Snapshot returns a copy of every session.
func (t *Tracker) Snapshot() map[uuid.UUID]Session {
	out := make(map[uuid.UUID]Session, t.sessions.len())
	for f, e := range t.sessions.all() {
		out[f] = e.session()
	}
	return out
}

// Forget drops the sessions of the given fans and reports how many it dropped.
func (t *Tracker) Forget(fans map[uuid.UUID]struct{}) int {
	n := 0
	for f := range fans {
		if e := t.sessions.get(f); e != nil {
			if e.gen == t.gen {
				t.dirty[e.idx].gone = true
			}
			t.sessions.remove(f)
			n++
		}
	}
	return n
}

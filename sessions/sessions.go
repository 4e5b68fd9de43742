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
	gap      time.Duration
	sessions map[uuid.UUID]*entry
	// dirty lists the entries changed since TakeDirty: a flag in the entry
	// and a list cost less per listen than a second map.
	dirty []*entry
}

type entry struct {
	Session
	fan   uuid.UUID
	dirty bool
}

func (t *Tracker) touch(e *entry) {
	if !e.dirty {
		e.dirty = true
		t.dirty = append(t.dirty, e)
	}
}

// NewTracker returns a tracker; a gap <= 0 means DefaultGap.
func NewTracker(gap time.Duration) *Tracker {
	if gap <= 0 {
		gap = DefaultGap
	}
	return &Tracker{gap: gap, sessions: make(map[uuid.UUID]*entry)}
}

// Load puts a session read from durable storage; it is not marked dirty.
func (t *Tracker) Load(fan uuid.UUID, s Session) {
	if e, ok := t.sessions[fan]; ok {
		e.Session = s
		return
	}
	t.sessions[fan] = &entry{Session: s, fan: fan}
}

// Listen records a listen at time at and reports whether it started a new session.
// A listen older than the session's last one (events arrive out of order) extends
// the session backwards only when it falls within the gap.
func (t *Tracker) Listen(fan uuid.UUID, at time.Time) (s Session, started bool) {
	cur, ok := t.sessions[fan]
	switch {
	case !ok:
		cur = &entry{Session: Session{Start: at, Last: at}, fan: fan}
		t.sessions[fan] = cur
		started = true
	case at.After(cur.Last):
		if at.Sub(cur.Last) > t.gap {
			cur.Session = Session{Start: at, Last: at}
			started = true
		} else {
			cur.Last = at
		}
	case at.Before(cur.Start) && cur.Start.Sub(at) <= t.gap:
		cur.Start = at
	}
	t.touch(cur)
	return cur.Session, started
}

// Live reports whether the fan's session is live at time at.
func (t *Tracker) Live(fan uuid.UUID, at time.Time) bool {
	_, live := t.Status(fan, at)
	return live
}

// Status returns the fan's session, if any, and whether it is live at time
// at, in one lookup.
func (t *Tracker) Status(fan uuid.UUID, at time.Time) (s Session, live bool) {
	e, ok := t.sessions[fan]
	if !ok {
		return Session{}, false
	}
	return e.Session, t.LiveAt(e.Session, at)
}

// LiveAt reports whether s, a session this tracker returned, is live at time at.
func (t *Tracker) LiveAt(s Session, at time.Time) bool {
	return !at.Before(s.Start) && at.Sub(s.Last) <= t.gap
}

// Get returns the fan's session, if any.
func (t *Tracker) Get(fan uuid.UUID) (Session, bool) {
	e, ok := t.sessions[fan]
	if !ok {
		return Session{}, false
	}
	return e.Session, true
}

// TakeDirty returns the sessions changed since the last call and forgets them.
func (t *Tracker) TakeDirty() map[uuid.UUID]Session {
	out := make(map[uuid.UUID]Session, len(t.dirty))
	for _, e := range t.dirty {
		if e.dirty { // not forgotten since
			out[e.fan] = e.Session
			e.dirty = false
		}
	}
	clear(t.dirty) // drop the pointers: forgotten entries can be collected
	t.dirty = t.dirty[:0]
	return out
}

// Snapshot returns a copy of every session.
func (t *Tracker) Snapshot() map[uuid.UUID]Session {
	out := make(map[uuid.UUID]Session, len(t.sessions))
	for f, e := range t.sessions {
		out[f] = e.Session
	}
	return out
}

// Forget drops the sessions of the given fans and reports how many it dropped.
func (t *Tracker) Forget(fans map[uuid.UUID]struct{}) int {
	n := 0
	for f := range fans {
		if e, ok := t.sessions[f]; ok {
			e.dirty = false
			delete(t.sessions, f)
			n++
		}
	}
	return n
}

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
	sessions map[uuid.UUID]*Session
	dirty    map[uuid.UUID]struct{}
}

// NewTracker returns a tracker; a gap <= 0 means DefaultGap.
func NewTracker(gap time.Duration) *Tracker {
	if gap <= 0 {
		gap = DefaultGap
	}
	return &Tracker{gap: gap, sessions: make(map[uuid.UUID]*Session), dirty: make(map[uuid.UUID]struct{})}
}

// Load puts a session read from durable storage; it is not marked dirty.
func (t *Tracker) Load(fan uuid.UUID, s Session) {
	ss := s
	t.sessions[fan] = &ss
}

// Listen records a listen at time at and reports whether it started a new session.
// A listen older than the session's last one (events arrive out of order) extends
// the session backwards only when it falls within the gap.
func (t *Tracker) Listen(fan uuid.UUID, at time.Time) (s Session, started bool) {
	cur, ok := t.sessions[fan]
	switch {
	case !ok:
		cur = &Session{Start: at, Last: at}
		t.sessions[fan] = cur
		started = true
	case at.After(cur.Last):
		if at.Sub(cur.Last) > t.gap {
			*cur = Session{Start: at, Last: at}
			started = true
		} else {
			cur.Last = at
		}
	case at.Before(cur.Start) && cur.Start.Sub(at) <= t.gap:
		cur.Start = at
	}
	t.dirty[fan] = struct{}{}
	return *cur, started
}

// Live reports whether the fan's session is live at time at.
func (t *Tracker) Live(fan uuid.UUID, at time.Time) bool {
	s, ok := t.sessions[fan]
	if !ok {
		return false
	}
	return !at.Before(s.Start) && at.Sub(s.Last) <= t.gap
}

// Get returns the fan's session, if any.
func (t *Tracker) Get(fan uuid.UUID) (Session, bool) {
	s, ok := t.sessions[fan]
	if !ok {
		return Session{}, false
	}
	return *s, true
}

// TakeDirty returns the sessions changed since the last call and forgets them.
func (t *Tracker) TakeDirty() map[uuid.UUID]Session {
	out := make(map[uuid.UUID]Session, len(t.dirty))
	for f := range t.dirty {
		out[f] = *t.sessions[f]
	}
	clear(t.dirty)
	return out
}

// Snapshot returns a copy of every session.
func (t *Tracker) Snapshot() map[uuid.UUID]Session {
	out := make(map[uuid.UUID]Session, len(t.sessions))
	for f, s := range t.sessions {
		out[f] = *s
	}
	return out
}

// Forget drops the sessions of the given fans and reports how many it dropped.
func (t *Tracker) Forget(fans map[uuid.UUID]struct{}) int {
	n := 0
	for f := range fans {
		if _, ok := t.sessions[f]; ok {
			delete(t.sessions, f)
			delete(t.dirty, f)
			n++
		}
	}
	return n
}

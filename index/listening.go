// Package index keeps the dynamic index per (fan, performer).
//
// In the walking skeleton the index is the number of minutes a fan streamed a
// performer within a rolling window of whole days; the full scoring of F4 grows
// from here. The package is plain Go: no Kafka, HTTP or SQL.
package index

import (
	"time"

	"github.com/google/uuid"
)

// WindowDays is the longest rolling window the listening counter can answer for.
// Seven day-buckets keep a counter at 32 bytes.
const WindowDays = 7

// Key names one (fan, performer) pair.
type Key struct {
	Fan       uuid.UUID
	Performer string
}

// Counter holds seconds played per UTC day for the last WindowDays days, as a
// ring indexed by day number modulo WindowDays.
type Counter struct {
	// LastDay is the day number (days since the Unix epoch, UTC) of the newest bucket.
	LastDay int32
	Seconds [WindowDays]uint32
}

// DayOf returns the UTC day number of t.
func DayOf(t time.Time) int32 {
	return int32(t.Unix() / 86400)
}

// Add counts d of listening at time at. Plays older than the window are ignored:
// they can no longer change any answer.
func (c *Counter) Add(at time.Time, d time.Duration) {
	day := DayOf(at)
	if c.LastDay == 0 && c.Seconds == ([WindowDays]uint32{}) {
		c.LastDay = day
	}
	if day > c.LastDay {
		c.advance(day)
	}
	if day <= c.LastDay-WindowDays {
		return
	}
	secs := d / time.Second
	slot := &c.Seconds[mod(day)]
	if sum := uint64(*slot) + uint64(secs); sum > uint64(^uint32(0)) {
		*slot = ^uint32(0)
	} else {
		*slot = uint32(sum)
	}
}

// advance moves the ring forward to day, clearing the days that fell out.
func (c *Counter) advance(day int32) {
	gap := day - c.LastDay
	if gap >= WindowDays {
		c.Seconds = [WindowDays]uint32{}
	} else {
		for d := c.LastDay + 1; d <= day; d++ {
			c.Seconds[mod(d)] = 0
		}
	}
	c.LastDay = day
}

// Minutes returns the minutes played in the window of days ending on the day of now.
func (c *Counter) Minutes(now time.Time, days int) float64 {
	days = min(max(days, 1), WindowDays)
	today := DayOf(now)
	var total uint64
	for d := today - int32(days) + 1; d <= today; d++ {
		if d > c.LastDay || d <= c.LastDay-WindowDays {
			continue
		}
		total += uint64(c.Seconds[mod(d)])
	}
	return float64(total) / 60
}

func mod(day int32) int {
	m := int(day % WindowDays)
	if m < 0 {
		m += WindowDays
	}
	return m
}

// Table is one partition's set of counters. It is not safe for concurrent use:
// a partition has one owner at a time.
type Table struct {
	counters map[Key]*Counter
	dirty    map[Key]struct{}
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{counters: make(map[Key]*Counter), dirty: make(map[Key]struct{})}
}

// Load puts a counter read from durable storage; it is not marked dirty.
func (t *Table) Load(k Key, c Counter) {
	cc := c
	t.counters[k] = &cc
}

// AddListen counts a play and returns the minutes in the window before and after it.
func (t *Table) AddListen(k Key, at time.Time, played time.Duration, now time.Time, days int) (before, after float64) {
	c, ok := t.counters[k]
	if !ok {
		c = &Counter{}
		t.counters[k] = c
	}
	before = c.Minutes(now, days)
	c.Add(at, played)
	t.dirty[k] = struct{}{}
	return before, c.Minutes(now, days)
}

// Minutes returns the current minutes for k within days.
func (t *Table) Minutes(k Key, now time.Time, days int) float64 {
	if c, ok := t.counters[k]; ok {
		return c.Minutes(now, days)
	}
	return 0
}

// Len returns how many pairs the table tracks.
func (t *Table) Len() int { return len(t.counters) }

// TakeDirty returns the counters changed since the last call and forgets them.
func (t *Table) TakeDirty() map[Key]Counter {
	out := make(map[Key]Counter, len(t.dirty))
	for k := range t.dirty {
		out[k] = *t.counters[k]
	}
	clear(t.dirty)
	return out
}

// Snapshot returns a copy of every counter, for comparisons and reports.
func (t *Table) Snapshot() map[Key]Counter {
	out := make(map[Key]Counter, len(t.counters))
	for k, c := range t.counters {
		out[k] = *c
	}
	return out
}

// Forget drops every counter of the given fans and reports how many it dropped.
func (t *Table) Forget(fans map[uuid.UUID]struct{}) int {
	n := 0
	for k := range t.counters {
		if _, gone := fans[k.Fan]; gone {
			delete(t.counters, k)
			delete(t.dirty, k)
			n++
		}
	}
	return n
}

package index

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCounterRollingWindow(t *testing.T) {
	day0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var c Counter
	c.Add(day0, 10*time.Minute)
	c.Add(day0.Add(24*time.Hour), 5*time.Minute)

	if got := c.Minutes(day0.Add(24*time.Hour), 7); got != 15 {
		t.Fatalf("minutes over 7 days = %v, want 15", got)
	}
	if got := c.Minutes(day0.Add(24*time.Hour), 1); got != 5 {
		t.Fatalf("minutes over 1 day = %v, want 5", got)
	}
	// Six days later the first day is still inside a 7-day window; seven days later it is not.
	if got := c.Minutes(day0.Add(6*24*time.Hour), 7); got != 15 {
		t.Fatalf("minutes after 6 days = %v, want 15", got)
	}
	if got := c.Minutes(day0.Add(7*24*time.Hour), 7); got != 5 {
		t.Fatalf("minutes after 7 days = %v, want 5", got)
	}
	// Advancing the ring must clear days that fell out before they are reused.
	c.Add(day0.Add(7*24*time.Hour), time.Minute)
	if got := c.Minutes(day0.Add(7*24*time.Hour), 7); got != 6 {
		t.Fatalf("minutes after reuse of slot = %v, want 6", got)
	}
	// A long gap empties the window.
	c.Add(day0.Add(30*24*time.Hour), 2*time.Minute)
	if got := c.Minutes(day0.Add(30*24*time.Hour), 7); got != 2 {
		t.Fatalf("minutes after long gap = %v, want 2", got)
	}
}

func TestCounterIgnoresPlaysOlderThanWindow(t *testing.T) {
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var c Counter
	c.Add(now, time.Minute)
	c.Add(now.Add(-10*24*time.Hour), time.Hour)
	if got := c.Minutes(now, 7); got != 1 {
		t.Fatalf("minutes = %v, want 1 (old play ignored)", got)
	}
	// A late play still inside the window counts on its own day.
	c.Add(now.Add(-2*24*time.Hour), 3*time.Minute)
	if got := c.Minutes(now, 7); got != 4 {
		t.Fatalf("minutes = %v, want 4", got)
	}
	if got := c.Minutes(now, 1); got != 1 {
		t.Fatalf("today's minutes = %v, want 1", got)
	}
}

func TestCounterSaturates(t *testing.T) {
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var c Counter
	c.Add(now, time.Duration(1<<31)*time.Second)
	c.Add(now, time.Duration(1<<31)*time.Second)
	if c.Seconds[mod(DayOf(now))] != ^uint32(0) {
		t.Fatalf("bucket did not saturate: %d", c.Seconds[mod(DayOf(now))])
	}
}

func TestTableDirtyTracking(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	tb := NewTable()
	k := Key{Fan: uuid.New(), Performer: "p1"}
	tb.Load(Key{Fan: uuid.New(), Performer: "p2"}, Counter{LastDay: DayOf(now), Seconds: [WindowDays]uint32{1}})
	before, after := tb.AddListen(k, now, 3*time.Minute, now, 7)
	if before != 0 || after != 3 {
		t.Fatalf("before, after = %v, %v; want 0, 3", before, after)
	}
	dirty := tb.TakeDirty()
	if len(dirty) != 1 {
		t.Fatalf("dirty = %d entries, want 1 (loaded counters are clean)", len(dirty))
	}
	if _, ok := dirty[k]; !ok {
		t.Fatal("changed key not dirty")
	}
	if len(tb.TakeDirty()) != 0 {
		t.Fatal("dirty set not cleared")
	}
	if tb.Len() != 2 {
		t.Fatalf("len = %d, want 2", tb.Len())
	}
}

package sessions

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestSessionStartExtendEnd(t *testing.T) {
	fan := uuid.New()
	t0 := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	tr := NewTracker(30 * time.Minute)

	if tr.Live(fan, t0) {
		t.Fatal("live before any listen")
	}
	if _, started := tr.Listen(fan, t0); !started {
		t.Fatal("first listen did not start a session")
	}
	s, started := tr.Listen(fan, t0.Add(29*time.Minute))
	if started || !s.Start.Equal(t0) {
		t.Fatalf("listen within gap: started=%v start=%v; want extension of session from %v", started, s.Start, t0)
	}
	if !tr.Live(fan, t0.Add(59*time.Minute)) {
		t.Fatal("session not live 30 minutes after last listen")
	}
	if tr.Live(fan, t0.Add(59*time.Minute+time.Second)) {
		t.Fatal("session live past the gap")
	}
	s, started = tr.Listen(fan, t0.Add(2*time.Hour))
	if !started || !s.Start.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("listen after gap: started=%v start=%v; want a new session", started, s.Start)
	}
}

func TestSessionOutOfOrder(t *testing.T) {
	fan := uuid.New()
	t0 := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	tr := NewTracker(0)
	tr.Listen(fan, t0)
	s, started := tr.Listen(fan, t0.Add(-10*time.Minute))
	if started || !s.Start.Equal(t0.Add(-10*time.Minute)) || !s.Last.Equal(t0) {
		t.Fatalf("late listen: %+v started=%v", s, started)
	}
	s, _ = tr.Listen(fan, t0.Add(-3*time.Hour))
	if !s.Start.Equal(t0.Add(-10 * time.Minute)) {
		t.Fatalf("listen far before session moved its start: %+v", s)
	}
	if len(tr.TakeDirty()) != 1 || len(tr.TakeDirty()) != 0 {
		t.Fatal("dirty tracking wrong")
	}
}

func TestTakeDirty(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	t0 := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	tr := NewTracker(0)
	tr.Load(b, Session{Start: t0, Last: t0})
	if d := tr.TakeDirty(); len(d) != 0 {
		t.Fatalf("loaded sessions reported dirty: %v", d)
	}
	tr.Listen(a, t0)
	tr.Listen(a, t0.Add(time.Minute)) // twice: reported once, with its latest value
	if n := tr.Listed(); n != 1 {
		t.Fatalf("Listed after a's listens = %d; want 1", n)
	}
	tr.Listen(b, t0.Add(time.Minute))
	d := tr.TakeDirty()
	if len(d) != 2 || d[0].Fan != a || d[0].Seq != 0 || !d[0].Last.Equal(t0.Add(time.Minute)) ||
		d[1].Fan != b || d[1].Seq != 1 || !d[1].Start.Equal(t0) {
		t.Fatalf("dirty = %+v; want a then b, in the order first changed, with their latest sessions", d)
	}
	if d := tr.TakeDirty(); len(d) != 0 {
		t.Fatalf("second TakeDirty = %v; want nothing changed since", d)
	}

	// A forgotten fan is not reported, even when it listens again before the
	// next TakeDirty: then only its new session is.
	tr.Listen(a, t0.Add(2*time.Minute))
	tr.Listen(b, t0.Add(2*time.Minute))
	if n := tr.Forget(map[uuid.UUID]struct{}{a: {}, b: {}}); n != 2 {
		t.Fatalf("Forget = %d; want 2", n)
	}
	tr.Listen(b, t0.Add(3*time.Hour))
	if n := tr.Listed(); n != 3 {
		t.Fatalf("Listed after forgetting = %d; want 3, the forgotten two included", n)
	}
	d = tr.TakeDirty()
	if len(d) != 1 || d[0].Fan != b || d[0].Seq != 2 || !d[0].Start.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("dirty after forgetting = %+v; want only b's new session, listed third", d)
	}
	if s, live := tr.Status(b, t0.Add(3*time.Hour+time.Minute)); !live || !s.Start.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("Status(b) = %v, %v; want its live session", s, live)
	}
	if _, live := tr.Status(a, t0.Add(3*time.Hour)); live {
		t.Fatal("forgotten fan's session is live")
	}
}

// TestTakeDirtyAcrossGenerationWrap runs the tracker past 2^32 checkpoints:
// entries unchanged since before the wrap, and ones loaded after it, are not
// taken for listed.
func TestTakeDirtyAcrossGenerationWrap(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	t0 := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	tr := NewTracker(0)
	tr.gen = 1<<32 - 1
	tr.Listen(a, t0)
	if d := tr.TakeDirty(); len(d) != 1 {
		t.Fatalf("TakeDirty before the wrap = %v; want a", d)
	}
	tr.Load(b, Session{Start: t0, Last: t0})
	tr.Listen(a, t0.Add(time.Minute))
	d := tr.TakeDirty()
	if len(d) != 1 || d[0].Fan != a || !d[0].Last.Equal(t0.Add(time.Minute)) {
		t.Fatalf("TakeDirty after the wrap = %v; want a's latest session only", d)
	}
	if d := tr.TakeDirty(); len(d) != 0 {
		t.Fatalf("TakeDirty with nothing changed = %v", d)
	}
}

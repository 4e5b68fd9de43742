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

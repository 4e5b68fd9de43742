package push

import (
	"testing"

	"github.com/google/uuid"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHubRoutesToTheFansStreams(t *testing.T) {
	h := NewHub()
	a, b := uuid.New(), uuid.New()
	if h.Online(a) {
		t.Fatal("online before subscribing")
	}
	ch1, cancel1 := h.Subscribe(a)
	ch2, cancel2 := h.Subscribe(a)
	if !h.Online(a) || h.Online(b) {
		t.Fatal("online state wrong")
	}
	if n := h.Send(a, Message{ID: "1", Event: "offer", Data: []byte(`{}`)}); n != 2 {
		t.Fatalf("delivered to %d streams, want 2", n)
	}
	if m := <-ch1; m.ID != "1" {
		t.Fatalf("stream 1 got %+v", m)
	}
	if m := <-ch2; m.ID != "1" {
		t.Fatalf("stream 2 got %+v", m)
	}
	if n := h.Send(b, Message{ID: "2"}); n != 0 {
		t.Fatalf("delivered %d pushes to a fan with no stream", n)
	}
	cancel1()
	cancel1() // idempotent
	cancel2()
	if h.Online(a) {
		t.Fatal("online after every stream closed")
	}
}

func TestHubNeverBlocksOnASlowStream(t *testing.T) {
	h := NewHub()
	fan := uuid.New()
	_, cancel := h.Subscribe(fan)
	defer cancel()
	for i := range subscriberBuffer {
		if h.Send(fan, Message{ID: string(rune('a' + i))}) != 1 {
			t.Fatalf("push %d refused before the buffer was full", i)
		}
	}
	if h.Send(fan, Message{ID: "overflow"}) != 0 {
		t.Fatal("push accepted past the buffer")
	}
}

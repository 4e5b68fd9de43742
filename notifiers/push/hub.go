// Package push delivers in-app offers to the live streams partner apps hold
// open for their signed-in users.
package push

import (
	"sync"

	"github.com/google/uuid"
)

// Message is one in-app push, sent as a Server-Sent Event.
type Message struct {
	ID    string // the SSE id: the offer id
	Event string // the SSE event name
	Data  []byte // JSON
}

// subscriberBuffer bounds how far a slow stream may lag before pushes to it fail
// (and delivery falls back to the next channel) rather than block the sender.
const subscriberBuffer = 16

// Hub routes pushes to the streams open in this process. It is safe for concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs map[uuid.UUID]map[chan Message]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: make(map[uuid.UUID]map[chan Message]struct{})}
}

// Subscribe opens a stream for a fan; call cancel when the stream closes.
func (h *Hub) Subscribe(fan uuid.UUID) (msgs <-chan Message, cancel func()) {
	ch := make(chan Message, subscriberBuffer)
	h.mu.Lock()
	if h.subs[fan] == nil {
		h.subs[fan] = make(map[chan Message]struct{})
	}
	h.subs[fan][ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs[fan], ch)
			if len(h.subs[fan]) == 0 {
				delete(h.subs, fan)
			}
		})
	}
}

// Online reports whether the fan has a stream open.
func (h *Hub) Online(fan uuid.UUID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[fan]) > 0
}

// Send hands m to every open stream of the fan without blocking and reports
// how many took it.
func (h *Hub) Send(fan uuid.UUID, m Message) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for ch := range h.subs[fan] {
		select {
		case ch <- m:
			n++
		default:
		}
	}
	return n
}

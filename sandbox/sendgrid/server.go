// Package sendgrid is a local stand-in for SendGrid's v3 Mail Send and Email
// Activity APIs. It answers the way SendGrid's OpenAPI descriptions document
// (status codes, error documents, headers), so the real sendgrid-go client can
// be exercised without network access.
//
// Only the HTTP boundary is faked: the server checks the bearer key,
// validates mail bodies, keeps what it accepted in memory (raw bytes and
// decoded JSON) and makes it searchable through GET /v3/messages.
package sendgrid

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxMessageBytes is the largest mail body the sandbox accepts. SendGrid's
// Mail Send description caps (compressed) bodies at 30 MB; bigger ones get
// 413 Payload Too Large.
const MaxMessageBytes = 30 << 20

// authErrorMessage is what SendGrid answers for a missing or wrong API key.
const authErrorMessage = "The provided authorization grant is invalid, expired, or revoked"

// Config configures a Server.
type Config struct {
	// APIKey is the key clients must send as "Authorization: Bearer <key>".
	APIKey string

	// Clock returns the current time; it stamps accepted messages and
	// decides when they become visible to Email Activity. Defaults to
	// time.Now.
	Clock func() time.Time

	// ActivityDelay is how long after acceptance a message stays invisible
	// to GET /v3/messages. Real Email Activity is eventually consistent;
	// set this to test callers that search too early. Defaults to 0.
	ActivityDelay time.Duration
}

// Message is one mail send request the sandbox accepted.
type Message struct {
	// ID is the X-Message-Id returned to the client.
	ID string
	// Raw is the request body exactly as received (after gzip decoding).
	Raw []byte
	// JSON is Raw decoded generically, numbers as json.Number.
	JSON map[string]any
	// Mail is Raw decoded into the typed v3 mail body.
	Mail Mail
	// Header holds the request headers.
	Header http.Header
	// AcceptedAt is when the sandbox accepted the request.
	AcceptedAt time.Time
}

// Fault describes how the sandbox should misbehave for one request. The zero
// Fault means "behave normally".
type Fault struct {
	// Status, if non-zero, is the HTTP status to answer with instead of the
	// normal response, with a SendGrid error document as body.
	Status int

	// Message is the error message in the body. Defaults to the status text.
	Message string

	// RetryAfter, if positive, is sent as Retry-After (seconds) and as
	// X-RateLimit-Reset (Unix time), the header SendGrid documents for 429.
	RetryAfter time.Duration

	// Store makes the sandbox validate and accept a mail send as if it had
	// succeeded before answering with Status or hanging: the provider
	// accepted the message while the client saw an error. Invalid requests
	// are still rejected with their validation errors.
	Store bool

	// OnStore, if non-nil, is called with the stored message right after a
	// Store fault stored it and before the handler hangs or answers, so
	// tests can act (say, cancel the client) at exactly that point.
	OnStore func(Message)

	// Hang, if non-nil, makes the handler block until Hang is closed or the
	// client goes away, before answering.
	Hang <-chan struct{}
}

func (f Fault) active() bool { return f.Status != 0 || f.Store || f.Hang != nil }

// Server is an http.Handler faking SendGrid's v3 API. It is safe for
// concurrent use.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu       sync.Mutex
	messages []Message
	activity []activityRecord
	fault    func(*http.Request) Fault
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("APIKey is required")
	}
	if strings.ContainsAny(cfg.APIKey, " \t\r\n") {
		return nil, errors.New("APIKey must not contain whitespace")
	}
	if cfg.ActivityDelay < 0 {
		return nil, errors.New("ActivityDelay must not be negative")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/mail/send", s.mailSend)
	mux.HandleFunc("GET /v3/messages", s.searchMessages)
	mux.HandleFunc("/", s.notFound)
	s.mux = mux
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Len returns how many mail sends were accepted, without copying them.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Messages returns a snapshot of the accepted mail sends, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.copy()
	}
	return out
}

// copy returns m sharing no memory with it, so callers may mutate freely.
func (m Message) copy() Message {
	m.Raw = append([]byte(nil), m.Raw...)
	m.Header = m.Header.Clone()
	// Re-decoding is the simplest deep copy; Raw decoded fine on the way in.
	m.JSON, _ = decodeGeneric(m.Raw)
	m.Mail = Mail{}
	_ = json.Unmarshal(m.Raw, &m.Mail)
	return m
}

// Reset forgets every accepted message and the installed fault.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = nil
	s.activity = nil
	s.fault = nil
}

// SetFault installs f, consulted for every request before it is handled. A
// nil f, or f returning the zero Fault, means normal behaviour. f must not
// read r.Body.
func (s *Server) SetFault(f func(r *http.Request) Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *Server) faultFor(r *http.Request) Fault {
	s.mu.Lock()
	f := s.fault
	s.mu.Unlock()
	if f == nil {
		return Fault{}
	}
	return f(r)
}

func (s *Server) authorized(r *http.Request) bool {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && key == s.cfg.APIKey
}

// applyFault answers per f when it replaces the response entirely (no
// Store). It reports whether the response was written.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if !f.active() || f.Store {
		return false
	}
	if !wait(r, f.Hang) {
		return true
	}
	if f.Status == 0 {
		return false
	}
	s.writeFault(w, f)
	return true
}

// wait blocks on hang, if set, and reports whether the client is still there.
func wait(r *http.Request, hang <-chan struct{}) bool {
	if hang == nil {
		return true
	}
	// net/http only notices a client hanging up once the request body has
	// been consumed, so read it (or the hang would outlive the client) and
	// put it back for the normal answer that may follow the hang.
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes))
	r.Body = io.NopCloser(bytes.NewReader(body))
	select {
	case <-hang:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) writeFault(w http.ResponseWriter, f Fault) {
	if f.RetryAfter > 0 {
		secs := int64((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(s.cfg.Clock().Unix()+secs))
	}
	msg := f.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(f.Status))
	}
	writeJSON(w, f.Status, errorDoc{Errors: []errorItem{{Message: msg}}})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if s.applyFault(w, r, s.faultFor(r)) {
		return
	}
	if !s.authorized(r) {
		writeAuthError(w)
		return
	}
	if r.URL.Path == "/v3/mail/send" || r.URL.Path == "/v3/messages" {
		writeJSON(w, http.StatusMethodNotAllowed, errorDoc{Errors: []errorItem{{Message: "method not allowed"}}})
		return
	}
	writeJSON(w, http.StatusNotFound, errorDoc{Errors: []errorItem{{Message: "not found"}}})
}

// errorDoc is the spec's "Global Error Response Schema".
type errorDoc struct {
	Errors []errorItem `json:"errors"`
}

// errorItem is one entry of errorDoc. Field is a nullable string in the
// spec and only Mail Send reports it; help is typed as an object in the spec
// while SendGrid actually sends a URL string or null, so the sandbox leaves
// it out rather than contradict either.
type errorItem struct {
	Message string
	// Field names the offending request field; nil with NullField set
	// writes "field": null, nil alone omits the property.
	Field     *string
	NullField bool
}

// MarshalJSON implements json.Marshaler.
func (e errorItem) MarshalJSON() ([]byte, error) {
	m := map[string]any{"message": e.Message}
	switch {
	case e.Field != nil:
		m["field"] = *e.Field
	case e.NullField:
		m["field"] = nil
	}
	return json.Marshal(m)
}

func writeAuthError(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, errorDoc{Errors: []errorItem{{Message: authErrorMessage, NullField: true}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only sandbox-built values are marshalled; failing here is a bug.
		panic(fmt.Sprintf("encoding sandbox response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newMessageID returns an ID shaped like SendGrid's X-Message-Id: 22
// URL-safe base64 characters.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

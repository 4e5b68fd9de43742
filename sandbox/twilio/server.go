// Package twilio is a local stand-in for Twilio's Programmable Messaging REST
// API (2010-04-01 Messages resource). It answers create, list and fetch
// requests the way Twilio documents them in its OpenAPI description, so the
// real twilio-go client can be exercised without network access.
//
// Only the HTTP boundary is faked: the server validates authentication and
// request parameters, keeps the messages it accepted in memory, and exposes
// them to tests together with the raw form values it received.
package twilio

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// APIVersion is the only Twilio REST API version the sandbox serves.
const APIVersion = "2010-04-01"

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeySIDPattern  = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	contentSIDPattern = regexp.MustCompile(`^HX[0-9a-fA-F]{32}$`)
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)
	e164Pattern       = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
)

// Config configures a Server.
type Config struct {
	// AccountSID is the account the sandbox serves ("AC" + 32 hex digits).
	// Requests for any other account in the path are answered 404.
	AccountSID string

	// AuthToken is the account's auth token, checked as the basic-auth
	// password when the username is AccountSID.
	AuthToken string

	// APIKeys maps API key SIDs ("SK" + 32 hex digits) to their secrets.
	// Either an API key or AccountSID may be used as the basic-auth username.
	APIKeys map[string]string

	// Senders, if non-empty, lists the phone numbers the account owns. A
	// From outside this list is rejected with error 21606, as Twilio does
	// for numbers that do not belong to the account. Empty accepts any
	// E.164 From.
	Senders []string

	// Clock returns the current time; it stamps date_created/date_sent and
	// drives the DateSent list filters. Defaults to time.Now.
	Clock func() time.Time
}

// Message is one message the sandbox accepted.
type Message struct {
	// SID is the message SID returned to the client.
	SID string
	// AccountSID is the account the message was created under.
	AccountSID string
	// To is the recipient as received.
	To string
	// From is the sender number as received, "" for Messaging Service sends.
	From string
	// MessagingServiceSID is the MessagingServiceSid parameter as received.
	MessagingServiceSID string
	// Body is the text as received.
	Body string
	// Status is the status reported in the create response.
	Status string
	// NumSegments is the number of SMS segments reported.
	NumSegments int
	// DateCreated is when the sandbox accepted the message.
	DateCreated time.Time
	// Form holds every form value exactly as the client sent it.
	Form url.Values
}

// Fault describes how the sandbox should misbehave for one request. The zero
// Fault means "behave normally".
type Fault struct {
	// Status, if non-zero, is the HTTP status to answer with instead of the
	// normal response. The body is a Twilio error document.
	Status int

	// Code is the Twilio error code put in the body. Defaults to a code
	// matching Status (20429 for 429, 20500 for 5xx, ...).
	Code int

	// Message is the error message put in the body. Defaults to a message
	// matching Code.
	Message string

	// RetryAfter, if positive, is sent as a Retry-After header (in seconds).
	RetryAfter time.Duration

	// Store makes the sandbox validate and store a create request as if it
	// had succeeded before answering with Status or hanging. This simulates
	// a provider that accepted the message while the client saw an error.
	// Invalid requests are still rejected with their validation error.
	Store bool

	// OnStore, if non-nil, is called with the stored message right after a
	// Store fault stored it and before the handler hangs or answers, so
	// tests can act (say, cancel the client) at exactly that point.
	OnStore func(Message)

	// Hang, if non-nil, makes the handler block until Hang is closed or the
	// client goes away, before answering. Combined with Store it simulates
	// an accepted message whose response never reaches the client.
	Hang <-chan struct{}
}

func (f Fault) active() bool { return f.Status != 0 || f.Store || f.Hang != nil }

// Server is an http.Handler faking Twilio's Messages API. It is safe for
// concurrent use.
type Server struct {
	cfg        Config
	serviceSID string // default Messaging Service reported for From sends
	mux        *http.ServeMux

	mu       sync.Mutex
	messages []Message
	optedOut map[string]bool
	fault    func(*http.Request) Fault
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New("AccountSID must be \"AC\" followed by 32 hex digits")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("AuthToken is required")
	}
	for sid, secret := range cfg.APIKeys {
		if !apiKeySIDPattern.MatchString(sid) {
			return nil, fmt.Errorf("API key SID %q must be \"SK\" followed by 32 hex digits", sid)
		}
		if secret == "" {
			return nil, fmt.Errorf("API key %s has an empty secret", sid)
		}
	}
	for _, n := range cfg.Senders {
		if !e164Pattern.MatchString(n) {
			return nil, fmt.Errorf("sender %q is not an E.164 number", n)
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.APIKeys = maps.Clone(cfg.APIKeys)
	cfg.Senders = slices.Clone(cfg.Senders)

	s := &Server{
		cfg:        cfg,
		serviceSID: "MG" + randomHex(),
		optedOut:   map[string]bool{},
	}
	mux := http.NewServeMux()
	base := "/" + APIVersion + "/Accounts/{AccountSid}/"
	mux.HandleFunc("POST "+base+"Messages.json", s.createMessage)
	mux.HandleFunc("GET "+base+"Messages.json", s.listMessages)
	// Twilio's path is Messages/{Sid}.json; ServeMux wildcards must span a
	// whole segment, so the ".json" suffix is stripped in the handler.
	mux.HandleFunc("GET "+base+"Messages/{file}", s.fetchMessage)
	mux.HandleFunc("/", s.notFound)
	s.mux = mux
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Len returns how many messages were accepted, without copying them.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Messages returns a snapshot of the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		m.Form = cloneValues(m.Form)
		out[i] = m
	}
	return out
}

// Reset forgets every accepted message, opt-out and fault.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = nil
	s.optedOut = map[string]bool{}
	s.fault = nil
}

// SetFault installs f, consulted for every request before it is handled.
// A nil f, or f returning the zero Fault, means normal behaviour. Form values
// of create requests are already parsed when f runs (r.PostForm), so f may
// inspect them.
func (s *Server) SetFault(f func(r *http.Request) Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// OptOut marks the number as having replied STOP: later messages to it are
// rejected with error 21610, as Twilio does.
func (s *Server) OptOut(number string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.optedOut[number] = true
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

// authenticate checks HTTP basic auth the way Twilio does: the username is
// the account SID or an API key SID, the password its token or secret.
func (s *Server) authenticate(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if user == s.cfg.AccountSID {
		return pass == s.cfg.AuthToken
	}
	secret, found := s.cfg.APIKeys[user]
	return found && pass == secret
}

// preamble runs the checks every route shares. It reports whether the
// handler should go on.
func (s *Server) preamble(w http.ResponseWriter, r *http.Request) bool {
	if !s.authenticate(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, codeAuthenticate, "Authenticate")
		return false
	}
	if r.PathValue("AccountSid") != s.cfg.AccountSID {
		writeNotFound(w, r)
		return false
	}
	return true
}

// applyFault answers per f if it replaces the response entirely (no Store).
// It reports whether the response was written.
func applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if !f.active() || f.Store {
		return false
	}
	if !wait(r, f.Hang) {
		return true
	}
	if f.Status == 0 {
		return false
	}
	writeFault(w, f)
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
	body, _ := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	select {
	case <-hang:
		return true
	case <-r.Context().Done():
		return false
	}
}

func writeFault(w http.ResponseWriter, f Fault) {
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
	}
	code := cmp.Or(f.Code, defaultCode(f.Status))
	writeError(w, f.Status, code, cmp.Or(f.Message, defaultMessage(code, f.Status)))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if f := s.faultFor(r); applyFault(w, r, f) {
		return
	}
	if !s.authenticate(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, codeAuthenticate, "Authenticate")
		return
	}
	// ServeMux routes a known path with an unsupported method here too.
	if isMessagesPath(r.URL.Path) {
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method not allowed")
		return
	}
	writeNotFound(w, r)
}

func isMessagesPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/"+APIVersion+"/Accounts/")
	if !ok {
		return false
	}
	_, tail, ok := strings.Cut(rest, "/")
	return ok && (tail == "Messages.json" || strings.HasPrefix(tail, "Messages/") && !strings.Contains(tail[len("Messages/"):], "/"))
}

func (s *Server) fetchMessage(w http.ResponseWriter, r *http.Request) {
	if f := s.faultFor(r); applyFault(w, r, f) {
		return
	}
	if !s.preamble(w, r) {
		return
	}
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok || !messageSIDPattern.MatchString(sid) {
		writeNotFound(w, r)
		return
	}
	s.mu.Lock()
	i := slices.IndexFunc(s.messages, func(m Message) bool { return m.SID == sid })
	var found Message
	if i >= 0 {
		found = s.messages[i]
	}
	s.mu.Unlock()
	if i < 0 {
		writeNotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, s.resource(found))
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

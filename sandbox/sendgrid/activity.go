package sendgrid

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

const (
	defaultActivityLimit = 10
	maxActivityLimit     = 1000
)

// activityRecord is what Email Activity knows about one recipient of one
// accepted mail send.
type activityRecord struct {
	msgID      string
	fromEmail  string
	subject    string
	toEmail    string
	uniqueArgs map[string]string
	acceptedAt time.Time
}

// activityMessage is the spec's "Abbv. Message".
type activityMessage struct {
	FromEmail     string `json:"from_email"`
	MsgID         string `json:"msg_id"`
	Subject       string `json:"subject"`
	ToEmail       string `json:"to_email"`
	Status        string `json:"status"`
	OpensCount    int    `json:"opens_count"`
	ClicksCount   int    `json:"clicks_count"`
	LastEventTime string `json:"last_event_time"`
}

// accept stores m and indexes one activity record per recipient, the way
// SendGrid splits a request into per-recipient messages. Their msg_id starts
// with the X-Message-Id followed by a ".filter..." suffix, as SendGrid's do.
func (s *Server) accept(m Message) {
	var recs []activityRecord
	n := 0
	for _, p := range m.Mail.Personalizations {
		from := m.Mail.From
		if p.From != nil {
			from = p.From
		}
		subject := cmpOr(p.Subject, m.Mail.Subject)
		// Personalization custom_args override the message-level ones.
		args := maps.Clone(m.Mail.CustomArgs)
		if args == nil {
			args = map[string]string{}
		}
		maps.Copy(args, p.CustomArgs)
		for _, list := range [][]Address{p.To, p.CC, p.BCC} {
			for _, a := range list {
				recs = append(recs, activityRecord{
					msgID:      fmt.Sprintf("%s.filterdrecv-sandbox-1-%s-%d.0", m.ID, strings.ToUpper(randomHex(4)), n),
					fromEmail:  from.Email,
					subject:    subject,
					toEmail:    a.Email,
					uniqueArgs: args,
					acceptedAt: m.AcceptedAt,
				})
				n++
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	s.activity = append(s.activity, recs...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Server) searchMessages(w http.ResponseWriter, r *http.Request) {
	if s.applyFault(w, r, s.faultFor(r)) {
		return
	}
	if !s.authorized(r) {
		writeAuthError(w)
		return
	}
	q := r.URL.Query()
	limit := defaultActivityLimit
	if v := q.Get("limit"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f != math.Trunc(f) || f < 1 || f > maxActivityLimit {
			writeSearchError(w, "limit must be greater than 0 and less than or equal to 1000")
			return
		}
		limit = int(f)
	}
	raw := q.Get("query")
	if raw == "" {
		writeSearchError(w, "query is required")
		return
	}
	pred, err := parseQuery(raw)
	if err != nil {
		writeSearchError(w, "invalid syntax: "+err.Error())
		return
	}

	visibleBefore := s.cfg.Clock().Add(-s.cfg.ActivityDelay)
	s.mu.Lock()
	out := []activityMessage{}
	for _, rec := range slices.Backward(s.activity) {
		if len(out) == limit {
			break
		}
		if rec.acceptedAt.After(visibleBefore) || !pred(rec) {
			continue
		}
		out = append(out, activityMessage{
			FromEmail:     rec.fromEmail,
			MsgID:         rec.msgID,
			Subject:       rec.subject,
			ToEmail:       rec.toEmail,
			Status:        "processed",
			LastEventTime: rec.acceptedAt.UTC().Format(time.RFC3339),
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func writeSearchError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, errorDoc{Errors: []errorItem{{Message: msg}}})
}

// predicate selects activity records.
type predicate func(activityRecord) bool

// parseQuery understands the subset of the Email Activity query language
// Crescendo relies on:
//
//	query := and ("OR" and)*
//	and   := term ("AND" term)*
//	term  := "(" query ")" | field op "string"
//	field := to_email | from_email | subject | msg_id | status | unique_args['key']
//	op    := "=" | "!=" | "LIKE" | "NOT LIKE"
//
// LIKE patterns use % as the wildcard. Keywords are case-insensitive.
func parseQuery(src string) (predicate, error) {
	p := &queryParser{src: src}
	pred, err := p.or()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, fmt.Errorf("unexpected %q at position %d", p.src[p.pos:], p.pos)
	}
	return pred, nil
}

type queryParser struct {
	src string
	pos int
}

func (p *queryParser) skipSpace() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

// keyword consumes kw (case-insensitively) if it is next as a whole word.
func (p *queryParser) keyword(kw string) bool {
	p.skipSpace()
	end := p.pos + len(kw)
	if end > len(p.src) || !strings.EqualFold(p.src[p.pos:end], kw) {
		return false
	}
	if end < len(p.src) && isIdentByte(p.src[end]) {
		return false
	}
	p.pos = end
	return true
}

func (p *queryParser) or() (predicate, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(r activityRecord) bool { return l(r) || right(r) }
	}
	return left, nil
}

func (p *queryParser) and() (predicate, error) {
	left, err := p.term()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		right, err := p.term()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(r activityRecord) bool { return l(r) && right(r) }
	}
	return left, nil
}

func (p *queryParser) term() (predicate, error) {
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ')' {
			return nil, fmt.Errorf("missing ')' at position %d", p.pos)
		}
		p.pos++
		return inner, nil
	}
	get, err := p.field()
	if err != nil {
		return nil, err
	}
	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	val, err := p.quoted('"')
	if err != nil {
		return nil, err
	}
	switch op {
	case "=":
		return func(r activityRecord) bool { v, ok := get(r); return ok && v == val }, nil
	case "!=":
		return func(r activityRecord) bool { v, ok := get(r); return !ok || v != val }, nil
	case "LIKE":
		return func(r activityRecord) bool { v, ok := get(r); return ok && like(v, val) }, nil
	default: // NOT LIKE
		return func(r activityRecord) bool { v, ok := get(r); return !ok || !like(v, val) }, nil
	}
}

func (p *queryParser) field() (func(activityRecord) (string, bool), error) {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) && isIdentByte(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[start:p.pos]
	switch name {
	case "to_email":
		return func(r activityRecord) (string, bool) { return r.toEmail, true }, nil
	case "from_email":
		return func(r activityRecord) (string, bool) { return r.fromEmail, true }, nil
	case "subject":
		return func(r activityRecord) (string, bool) { return r.subject, true }, nil
	case "msg_id":
		return func(r activityRecord) (string, bool) { return r.msgID, true }, nil
	case "status":
		return func(activityRecord) (string, bool) { return "processed", true }, nil
	case "unique_args":
		if p.pos >= len(p.src) || p.src[p.pos] != '[' {
			return nil, fmt.Errorf("unique_args must be followed by ['key']")
		}
		p.pos++
		key, err := p.quoted('\'')
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.src) || p.src[p.pos] != ']' {
			return nil, fmt.Errorf("missing ']' at position %d", p.pos)
		}
		p.pos++
		return func(r activityRecord) (string, bool) { v, ok := r.uniqueArgs[key]; return v, ok }, nil
	case "":
		return nil, fmt.Errorf("expected a field at position %d", start)
	default:
		return nil, fmt.Errorf("'%s' is not a known field", name)
	}
}

func (p *queryParser) operator() (string, error) {
	p.skipSpace()
	switch {
	case strings.HasPrefix(p.src[p.pos:], "!="):
		p.pos += 2
		return "!=", nil
	case strings.HasPrefix(p.src[p.pos:], "="):
		p.pos++
		return "=", nil
	case p.keyword("LIKE"):
		return "LIKE", nil
	case p.keyword("NOT"):
		if p.keyword("LIKE") {
			return "NOT LIKE", nil
		}
	}
	return "", fmt.Errorf("expected an operator at position %d", p.pos)
}

// quoted reads a string delimited by q, with backslash escaping q and
// backslash itself.
func (p *queryParser) quoted(q byte) (string, error) {
	p.skipSpace()
	if p.pos >= len(p.src) || p.src[p.pos] != q {
		return "", fmt.Errorf("expected %c-quoted value at position %d", q, p.pos)
	}
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\\' && p.pos+1 < len(p.src):
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
		case c == q:
			p.pos++
			return b.String(), nil
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", fmt.Errorf("unterminated %c-quoted value", q)
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// like matches s against a SQL LIKE pattern where % is any run of characters.
func like(s, pattern string) bool {
	parts := strings.Split(pattern, "%")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

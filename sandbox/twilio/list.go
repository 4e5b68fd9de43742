package twilio

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// listResponse is the spec's ListMessageResponse.
type listResponse struct {
	End             int               `json:"end"`
	FirstPageURI    string            `json:"first_page_uri"`
	NextPageURI     *string           `json:"next_page_uri"`
	Page            int               `json:"page"`
	PageSize        int               `json:"page_size"`
	PreviousPageURI *string           `json:"previous_page_uri"`
	Start           int               `json:"start"`
	URI             string            `json:"uri"`
	Messages        []messageResource `json:"messages"`
}

// dateFilter is one DateSent, DateSent< or DateSent> query parameter.
type dateFilter struct {
	op       byte // '=', '<' or '>'
	t        time.Time
	dateOnly bool
}

// dateLayouts are the DateSent formats the spec's examples show Twilio
// accepting, plus RFC 3339, which twilio-go sends.
var dateLayouts = []string{
	time.RFC3339Nano,
	time.RFC1123Z,
	time.RFC1123,
	"2006-01-02 15:04:05.000",
	"2006-01-02 15:04:05",
	"01/02/2006 15:04:05 MST",
}

func parseDateFilter(op byte, v string) (dateFilter, bool) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return dateFilter{op: op, t: t, dateOnly: true}, true
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return dateFilter{op: op, t: t.UTC()}, true
		}
	}
	return dateFilter{}, false
}

// match follows the spec: a bare date selects that GMT day, and the < and >
// forms are inclusive ("on and before", "on and after"). Timestamps are
// compared to the second.
func (f dateFilter) match(sent time.Time) bool {
	sent = sent.UTC()
	if f.dateOnly {
		day := time.Date(sent.Year(), sent.Month(), sent.Day(), 0, 0, 0, 0, time.UTC)
		switch f.op {
		case '<':
			return !day.After(f.t)
		case '>':
			return !day.Before(f.t)
		default:
			return day.Equal(f.t)
		}
	}
	switch f.op {
	case '<':
		return !sent.After(f.t)
	case '>':
		return !sent.Before(f.t)
	default:
		return sent.Truncate(time.Second).Equal(f.t.Truncate(time.Second))
	}
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	if f := s.faultFor(r); applyFault(w, r, f) {
		return
	}
	if !s.preamble(w, r) {
		return
	}
	q := r.URL.Query()

	var filters []dateFilter
	for _, p := range []struct {
		name string
		op   byte
	}{{"DateSent", '='}, {"DateSent<", '<'}, {"DateSent>", '>'}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		f, ok := parseDateFilter(p.op, v)
		if !ok {
			writeError(w, http.StatusBadRequest, codeInvalidParameter, fmt.Sprintf("Invalid %s: %q is not a valid date", p.name, v))
			return
		}
		filters = append(filters, f)
	}

	pageSize := defaultPageSize
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, codeInvalidParameter, "PageSize must be an integer between 1 and 1000")
			return
		}
		pageSize = n
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, codeInvalidParameter, "Page must be a non-negative integer")
			return
		}
		page = n
	}

	to, from := q.Get("To"), q.Get("From")
	s.mu.Lock()
	// Twilio lists newest first.
	var matched []Message
	for _, m := range slices.Backward(s.messages) {
		if to != "" && m.To != to || from != "" && m.From != from {
			continue
		}
		if !matchesAll(filters, m.DateCreated) {
			continue
		}
		matched = append(matched, m)
	}
	s.mu.Unlock()

	// A PageToken ("PA" + the SID of the previous page's last message) keeps
	// paging stable while new messages arrive; without one, Page is an
	// offset.
	start := page * pageSize
	if tok := q.Get("PageToken"); tok != "" {
		after := strings.TrimPrefix(tok, "PA")
		i := slices.IndexFunc(matched, func(m Message) bool { return m.SID == after })
		if !strings.HasPrefix(tok, "PA") || i < 0 {
			writeError(w, http.StatusBadRequest, codeInvalidParameter, "Invalid PageToken")
			return
		}
		start = i + 1
	}
	start = min(start, len(matched))
	end := min(start+pageSize, len(matched))
	pageMsgs := matched[start:end]

	base := r.URL.Path
	canonical := func(page int, token string) string {
		// Echo filters in the order Twilio does: To, From, DateSent*, PageSize, Page.
		var parts []string
		for _, name := range []string{"To", "From", "DateSent", "DateSent<", "DateSent>"} {
			if val := q.Get(name); val != "" {
				parts = append(parts, url.QueryEscape(name)+"="+url.QueryEscape(val))
			}
		}
		parts = append(parts, "PageSize="+strconv.Itoa(pageSize), "Page="+strconv.Itoa(page))
		if token != "" {
			parts = append(parts, "PageToken="+url.QueryEscape(token))
		}
		return base + "?" + strings.Join(parts, "&")
	}

	resp := listResponse{
		FirstPageURI: canonical(0, ""),
		Page:         page,
		PageSize:     pageSize,
		Start:        start,
		End:          max(start, end-1),
		URI:          canonical(page, q.Get("PageToken")),
		Messages:     make([]messageResource, 0, len(pageMsgs)),
	}
	for _, m := range pageMsgs {
		resp.Messages = append(resp.Messages, s.resource(m))
	}
	if end < len(matched) && len(pageMsgs) > 0 {
		next := canonical(page+1, "PA"+pageMsgs[len(pageMsgs)-1].SID)
		resp.NextPageURI = &next
	}
	if page > 0 {
		prev := canonical(page-1, "")
		resp.PreviousPageURI = &prev
	}
	writeJSON(w, http.StatusOK, resp)
}

func matchesAll(filters []dateFilter, sent time.Time) bool {
	for _, f := range filters {
		if !f.match(sent) {
			return false
		}
	}
	return true
}

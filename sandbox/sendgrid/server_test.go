package sendgrid_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/sandbox/sendgrid"
)

const apiKey = "SG.test-key.abc123"

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSandbox(t *testing.T, mutate ...func(*sendgrid.Config)) (*sendgrid.Server, *httptest.Server, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}
	cfg := sendgrid.Config{APIKey: apiKey, Clock: clock.Now}
	for _, m := range mutate {
		m(&cfg)
	}
	sb, err := sendgrid.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv, clock
}

type answer struct {
	status int
	header http.Header
	raw    []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.raw, &m); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, a.raw)
	}
	return m
}

func request(t *testing.T, ctx context.Context, method, rawURL string, body io.Reader, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, raw: raw}
}

func send(t *testing.T, srv *httptest.Server, body string) answer {
	t.Helper()
	return request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send", strings.NewReader(body), map[string]string{
		"Authorization": "Bearer " + apiKey,
		"Content-Type":  "application/json",
	})
}

func search(t *testing.T, srv *httptest.Server, query url.Values) answer {
	t.Helper()
	return request(t, t.Context(), http.MethodGet, srv.URL+"/v3/messages?"+query.Encode(), nil, map[string]string{
		"Authorization": "Bearer " + apiKey,
	})
}

// validMail returns a mail body with the given offer id and recipient.
func validMail(offerID, to string) map[string]any {
	return map[string]any{
		"personalizations": []any{map[string]any{
			"to":          []any{map[string]any{"email": to, "name": "Fan"}},
			"custom_args": map[string]any{"offer_id": offerID},
		}},
		"from":    map[string]any{"email": "offers@crescendo.example", "name": "Crescendo"},
		"subject": "Your tickets are waiting",
		"content": []any{
			map[string]any{"type": "text/plain", "value": "Claim them: https://cr.example/o/" + offerID},
			map[string]any{"type": "text/html", "value": "<p>Claim them</p>"},
		},
		"headers": map[string]any{"List-Unsubscribe": "<https://cr.example/u>"},
	}
}

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantErrors(t *testing.T, a answer, status int, want ...map[string]any) {
	t.Helper()
	var got struct {
		Errors []map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(a.raw, &got); err != nil {
		t.Fatalf("HTTP %d body is not an error document: %v: %s", a.status, err, a.raw)
	}
	if a.status != status || !reflect.DeepEqual(got.Errors, want) {
		t.Fatalf("got HTTP %d %v\nwant HTTP %d %v", a.status, got.Errors, status, want)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]sendgrid.Config{
		"missing key":    {},
		"key with space": {APIKey: "a b"},
		"negative delay": {APIKey: apiKey, ActivityDelay: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := sendgrid.New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestMailSendAccepted(t *testing.T) {
	sb, srv, clock := newSandbox(t)
	body := encode(t, validMail("o-1", "fan@example.com"))
	a := send(t, srv, body)
	if a.status != http.StatusAccepted || len(a.raw) != 0 {
		t.Fatalf("HTTP %d body %q, want 202 with no body", a.status, a.raw)
	}
	id := a.header.Get("X-Message-Id")
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(id) {
		t.Fatalf("X-Message-Id %q", id)
	}
	msgs := sb.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	m := msgs[0]
	if m.ID != id || string(m.Raw) != body || !m.AcceptedAt.Equal(clock.Now()) {
		t.Fatalf("stored %s %q at %v", m.ID, m.Raw, m.AcceptedAt)
	}
	if got := m.Header.Get("Authorization"); got != "Bearer "+apiKey {
		t.Errorf("stored Authorization %q", got)
	}
	if m.JSON["subject"] != "Your tickets are waiting" {
		t.Errorf("JSON subject %v", m.JSON["subject"])
	}
	want := sendgrid.Mail{
		Personalizations: []sendgrid.Personalization{{
			To:         []sendgrid.Address{{Email: "fan@example.com", Name: "Fan"}},
			CustomArgs: map[string]string{"offer_id": "o-1"},
		}},
		From:    &sendgrid.Address{Email: "offers@crescendo.example", Name: "Crescendo"},
		Subject: "Your tickets are waiting",
		Content: []sendgrid.Content{
			{Type: "text/plain", Value: "Claim them: https://cr.example/o/o-1"},
			{Type: "text/html", Value: "<p>Claim them</p>"},
		},
		Headers: map[string]string{"List-Unsubscribe": "<https://cr.example/u>"},
	}
	if !reflect.DeepEqual(m.Mail, want) {
		t.Errorf("typed mail\n got %+v\nwant %+v", m.Mail, want)
	}

	msgs[0].Raw[0] = 'X'
	msgs[0].JSON["subject"] = "changed"
	if again := sb.Messages()[0]; again.Raw[0] != '{' || again.JSON["subject"] != "Your tickets are waiting" {
		t.Fatal("Messages shares memory with the sandbox")
	}
}

func TestMailSendGzip(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	body := encode(t, validMail("o-gz", "fan@example.com"))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(body))
	_ = zw.Close()
	a := request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send", &buf, map[string]string{
		"Authorization":    "Bearer " + apiKey,
		"Content-Type":     "application/json",
		"Content-Encoding": "gzip",
	})
	if a.status != http.StatusAccepted {
		t.Fatalf("HTTP %d %s", a.status, a.raw)
	}
	if got := string(sb.Messages()[0].Raw); got != body {
		t.Fatalf("stored %q, want the decompressed body", got)
	}
}

func TestAuthentication(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	body := encode(t, validMail("o-1", "fan@example.com"))
	wantDoc := `{"errors":[{"field":null,"message":"The provided authorization grant is invalid, expired, or revoked"}]}`
	for name, auth := range map[string]string{
		"missing":      "",
		"wrong key":    "Bearer SG.other",
		"wrong scheme": "Basic " + apiKey,
		"bare key":     apiKey,
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			if auth != "" {
				h["Authorization"] = auth
			}
			for _, a := range []answer{
				request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send", strings.NewReader(body), h),
				request(t, t.Context(), http.MethodGet, srv.URL+`/v3/messages?query=to_email%3D%22a%40b.c%22`, nil, h),
			} {
				if a.status != http.StatusUnauthorized || string(a.raw) != wantDoc {
					t.Fatalf("HTTP %d %s, want 401 %s", a.status, a.raw, wantDoc)
				}
			}
		})
	}
	if len(sb.Messages()) != 0 {
		t.Fatal("unauthorized send stored")
	}
}

func TestMailSendValidation(t *testing.T) {
	sb, srv, clock := newSandbox(t)
	field := func(f string) map[string]any { return map[string]any{"field": f} }
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		field  any // nil for field-less errors
		msg    string
	}{
		{"missing personalizations", func(m map[string]any) { delete(m, "personalizations") }, "personalizations",
			"The personalizations field is required and must have at least one personalization."},
		{"empty personalizations", func(m map[string]any) { m["personalizations"] = []any{} }, "personalizations",
			"The personalizations field is required and must have at least one personalization."},
		{"missing to", func(m map[string]any) { delete(pers(m), "to") }, "personalizations.0.to",
			"The to array is required for all personalization objects, and must have at least one email object with a valid email address."},
		{"invalid to", func(m map[string]any) { pers(m)["to"] = []any{map[string]any{"email": "fan@"}} }, "personalizations.0.to.0.email",
			"Does not contain a valid address."},
		{"to without email", func(m map[string]any) { pers(m)["to"] = []any{map[string]any{"name": "Fan"}} }, "personalizations.0.to.0.email",
			"The email parameter is required."},
		{"duplicate recipient", func(m map[string]any) {
			pers(m)["cc"] = []any{map[string]any{"email": "FAN@example.com"}}
		}, "personalizations.0",
			"Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [FAN@example.com] in the personalizations.cc field."},
		{"missing from", func(m map[string]any) { delete(m, "from") }, "from",
			"The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter."},
		{"invalid from", func(m map[string]any) { m["from"] = map[string]any{"email": "nope"} }, "from.email", "Does not contain a valid address."},
		{"missing subject", func(m map[string]any) { delete(m, "subject") }, "subject",
			"The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."},
		{"empty subject", func(m map[string]any) { m["subject"] = "" }, "subject", "The subject must be a string at least one character in length."},
		{"missing content", func(m map[string]any) { delete(m, "content") }, "content",
			"Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."},
		{"empty content value", func(m map[string]any) {
			m["content"] = []any{map[string]any{"type": "text/plain", "value": ""}}
		}, "content.0.value", "The content value must be a string at least one character in length."},
		{"html before plain", func(m map[string]any) {
			c := m["content"].([]any)
			m["content"] = []any{c[1], c[0]}
		}, "content", "If present, text/plain must be first, followed by text/html, followed by any other content."},
		{"reserved header", func(m map[string]any) { m["headers"] = map[string]any{"Subject": "x"} }, "headers",
			`The header "Subject" is reserved and may not be set.`},
		{"non-string custom arg", func(m map[string]any) { pers(m)["custom_args"] = map[string]any{"n": 1} }, "personalizations.0.custom_args.n",
			"The value must be a string."},
		{"reply_to with reply_to_list", func(m map[string]any) {
			m["reply_to"] = map[string]any{"email": "a@example.com"}
			m["reply_to_list"] = []any{map[string]any{"email": "b@example.com"}}
		}, "reply_to", "reply_to is mutually exclusive with reply_to_list."},
		{"send_at beyond 72h", func(m map[string]any) { m["send_at"] = clock.Now().Add(73 * time.Hour).Unix() }, "send_at",
			"Scheduling more than 72 hours in advance is forbidden."},
		{"bad attachment disposition", func(m map[string]any) {
			m["attachments"] = []any{map[string]any{"content": "aGk=", "filename": "a.txt", "disposition": "sideways"}}
		}, "attachments.0.disposition", "The disposition must be either inline or attachment."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := validMail("o-1", "fan@example.com")
			tc.mutate(m)
			want := field(tc.field.(string))
			want["message"] = tc.msg
			wantErrors(t, send(t, srv, encode(t, m)), http.StatusBadRequest, want)
		})
	}

	// SendGrid reports every violation at once.
	wantErrors(t, send(t, srv, `{}`), http.StatusBadRequest,
		map[string]any{"field": "personalizations", "message": "The personalizations field is required and must have at least one personalization."},
		map[string]any{"field": "from", "message": "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter."},
		map[string]any{"field": "subject", "message": "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."},
		map[string]any{"field": "content", "message": "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."},
	)

	wantErrors(t, send(t, srv, `{"personalizations":`), http.StatusBadRequest, map[string]any{"field": nil, "message": "Bad Request"})

	a := request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send", strings.NewReader(encode(t, validMail("o", "fan@example.com"))),
		map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "text/plain"})
	wantErrors(t, a, http.StatusBadRequest, map[string]any{"field": nil, "message": "Content-Type should be application/json."})

	if n := len(sb.Messages()); n != 0 {
		t.Fatalf("invalid sends stored %d messages", n)
	}
}

func pers(m map[string]any) map[string]any {
	return m["personalizations"].([]any)[0].(map[string]any)
}

func TestMailSendAcceptsDocumentedAlternatives(t *testing.T) {
	_, srv, _ := newSandbox(t)
	for name, mutate := range map[string]func(map[string]any){
		"subject per personalization": func(m map[string]any) { delete(m, "subject"); pers(m)["subject"] = "Hi" },
		"template instead of subject and content": func(m map[string]any) {
			delete(m, "subject")
			delete(m, "content")
			m["template_id"] = "d-0123456789abcdef"
		},
		"html only":                 func(m map[string]any) { m["content"] = m["content"].([]any)[1:] },
		"message-level custom_args": func(m map[string]any) { m["custom_args"] = map[string]any{"campaign": "spring"} },
		"send_at within 72h":        func(m map[string]any) { m["send_at"] = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC).Unix() },
	} {
		t.Run(name, func(t *testing.T) {
			m := validMail("o-1", "fan@example.com")
			mutate(m)
			if a := send(t, srv, encode(t, m)); a.status != http.StatusAccepted {
				t.Fatalf("HTTP %d %s", a.status, a.raw)
			}
		})
	}
}

// zeros is an endless stream of '0' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

func TestMailSendTooLarge(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	body := io.MultiReader(strings.NewReader(`{"x":"`), io.LimitReader(zeros{}, sendgrid.MaxMessageBytes), strings.NewReader(`"}`))
	a := request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send", body, map[string]string{
		"Authorization": "Bearer " + apiKey,
		"Content-Type":  "application/json",
	})
	wantErrors(t, a, http.StatusRequestEntityTooLarge, map[string]any{
		"field":   nil,
		"message": "The JSON payload you have included in your request is too large. Please limit your request size to 30MB.",
	})
	if len(sb.Messages()) != 0 {
		t.Fatal("oversized body stored")
	}
}

func TestUnknownRoutes(t *testing.T) {
	_, srv, _ := newSandbox(t)
	h := map[string]string{"Authorization": "Bearer " + apiKey}
	wantErrors(t, request(t, t.Context(), http.MethodGet, srv.URL+"/v3/mail/send", nil, h), http.StatusMethodNotAllowed,
		map[string]any{"message": "method not allowed"})
	wantErrors(t, request(t, t.Context(), http.MethodGet, srv.URL+"/v3/templates", nil, h), http.StatusNotFound,
		map[string]any{"message": "not found"})
}

func sendOffer(t *testing.T, srv *httptest.Server, offerID, to string) string {
	t.Helper()
	a := send(t, srv, encode(t, validMail(offerID, to)))
	if a.status != http.StatusAccepted {
		t.Fatalf("send %s: HTTP %d %s", offerID, a.status, a.raw)
	}
	return a.header.Get("X-Message-Id")
}

type activity struct {
	Messages []map[string]any `json:"messages"`
}

func searchIDs(t *testing.T, srv *httptest.Server, query string, limit string) []string {
	t.Helper()
	q := url.Values{"query": {query}}
	if limit != "" {
		q.Set("limit", limit)
	}
	a := search(t, srv, q)
	if a.status != http.StatusOK {
		t.Fatalf("search %s: HTTP %d %s", query, a.status, a.raw)
	}
	var act activity
	if err := json.Unmarshal(a.raw, &act); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, m := range act.Messages {
		id, _, _ := strings.Cut(m["msg_id"].(string), ".")
		ids = append(ids, id)
	}
	return ids
}

func TestEmailActivitySearch(t *testing.T) {
	_, srv, clock := newSandbox(t)
	first := sendOffer(t, srv, "o-1", "ann@example.com")
	clock.Advance(time.Minute)
	second := sendOffer(t, srv, "o-2", "bob@example.com")
	clock.Advance(time.Minute)
	third := sendOffer(t, srv, "o-2", "cat@example.com")

	a := search(t, srv, url.Values{"query": {`unique_args['offer_id']="o-1"`}})
	want := map[string]any{
		"from_email":      "offers@crescendo.example",
		"subject":         "Your tickets are waiting",
		"to_email":        "ann@example.com",
		"status":          "processed",
		"opens_count":     float64(0),
		"clicks_count":    float64(0),
		"last_event_time": "2026-03-14T09:26:53Z",
	}
	var act activity
	if err := json.Unmarshal(a.raw, &act); err != nil || len(act.Messages) != 1 {
		t.Fatalf("HTTP %d %s (%v)", a.status, a.raw, err)
	}
	got := act.Messages[0]
	msgID := got["msg_id"].(string)
	delete(got, "msg_id")
	if !reflect.DeepEqual(got, want) || !strings.HasPrefix(msgID, first+".") {
		t.Fatalf("got %v msg_id %s, want %v with msg_id prefix %s.", got, msgID, want, first)
	}

	for _, tc := range []struct {
		query, limit string
		want         []string
	}{
		{`unique_args['offer_id']="o-2"`, "", []string{third, second}},
		{`unique_args['offer_id']="o-2"`, "1", []string{third}},
		{`unique_args['offer_id']="o-3"`, "", []string{}},
		{`unique_args['missing']="o-1"`, "", []string{}},
		{`to_email="ann@example.com"`, "", []string{first}},
		{`unique_args['offer_id']="o-2" AND to_email="bob@example.com"`, "", []string{second}},
		{`(unique_args['offer_id']="o-2") and (to_email="ann@example.com")`, "", []string{}},
		{`to_email="ann@example.com" OR to_email="cat@example.com"`, "", []string{third, first}},
		{`to_email LIKE "%@example.com" AND unique_args['offer_id']!="o-2"`, "", []string{first}},
		{`msg_id LIKE "` + second + `%"`, "", []string{second}},
	} {
		if got := searchIDs(t, srv, tc.query, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("query %s limit %q: got %v, want %v", tc.query, tc.limit, got, tc.want)
		}
	}

	for _, tc := range []struct {
		query url.Values
		msg   string
	}{
		{url.Values{"query": {`bad_field="x"`}}, "invalid syntax: 'bad_field' is not a known field"},
		{url.Values{"query": {`to_email="x`}}, `invalid syntax: unterminated "-quoted value`},
		{url.Values{}, "query is required"},
		{url.Values{"query": {`to_email="x"`}, "limit": {"0"}}, "limit must be greater than 0 and less than or equal to 1000"},
		{url.Values{"query": {`to_email="x"`}, "limit": {"1001"}}, "limit must be greater than 0 and less than or equal to 1000"},
	} {
		wantErrors(t, search(t, srv, tc.query), http.StatusBadRequest, map[string]any{"message": tc.msg})
	}
}

func TestEmailActivityIsEventuallyConsistent(t *testing.T) {
	_, srv, clock := newSandbox(t, func(c *sendgrid.Config) { c.ActivityDelay = 30 * time.Second })
	id := sendOffer(t, srv, "o-9", "fan@example.com")
	if got := searchIDs(t, srv, `unique_args['offer_id']="o-9"`, ""); len(got) != 0 {
		t.Fatalf("visible before ActivityDelay: %v", got)
	}
	clock.Advance(30 * time.Second)
	if got := searchIDs(t, srv, `unique_args['offer_id']="o-9"`, ""); !reflect.DeepEqual(got, []string{id}) {
		t.Fatalf("after ActivityDelay: %v, want [%s]", got, id)
	}
}

func TestActivityCoversEveryRecipient(t *testing.T) {
	_, srv, _ := newSandbox(t)
	m := validMail("o-5", "ann@example.com")
	pers(m)["bcc"] = []any{map[string]any{"email": "audit@crescendo.example"}}
	m["personalizations"] = append(m["personalizations"].([]any), map[string]any{
		"to":          []any{map[string]any{"email": "bob@example.com"}},
		"subject":     "Personal subject",
		"custom_args": map[string]any{"offer_id": "o-6"},
	})
	a := send(t, srv, encode(t, m))
	if a.status != http.StatusAccepted {
		t.Fatalf("HTTP %d %s", a.status, a.raw)
	}
	if got := searchIDs(t, srv, `unique_args['offer_id']="o-5"`, ""); len(got) != 2 {
		t.Errorf("o-5 matched %d recipients, want 2 (to and bcc)", len(got))
	}
	res := search(t, srv, url.Values{"query": {`unique_args['offer_id']="o-6"`}})
	var act activity
	_ = json.Unmarshal(res.raw, &act)
	if len(act.Messages) != 1 || act.Messages[0]["subject"] != "Personal subject" || act.Messages[0]["to_email"] != "bob@example.com" {
		t.Errorf("personalization override: %v", act.Messages)
	}
}

func TestFaults(t *testing.T) {
	sb, srv, clock := newSandbox(t)
	sb.SetFault(func(r *http.Request) sendgrid.Fault {
		if r.URL.Path == "/v3/mail/send" {
			return sendgrid.Fault{Status: http.StatusTooManyRequests, Message: "too many requests", RetryAfter: 2 * time.Second}
		}
		return sendgrid.Fault{}
	})
	a := send(t, srv, encode(t, validMail("o-1", "fan@example.com")))
	wantErrors(t, a, http.StatusTooManyRequests, map[string]any{"message": "too many requests"})
	if a.header.Get("Retry-After") != "2" || a.header.Get("X-RateLimit-Reset") != fmt.Sprint(clock.Now().Unix()+2) {
		t.Errorf("rate-limit headers %v", a.header)
	}
	if len(sb.Messages()) != 0 {
		t.Fatal("faulted request stored")
	}
	// Other routes are unaffected.
	if a := search(t, srv, url.Values{"query": {`to_email="fan@example.com"`}}); a.status != http.StatusOK {
		t.Fatalf("search under a send fault: HTTP %d", a.status)
	}

	sb.SetFault(func(*http.Request) sendgrid.Fault { return sendgrid.Fault{Status: http.StatusBadGateway, Store: true} })
	a = send(t, srv, encode(t, validMail("o-2", "fan@example.com")))
	wantErrors(t, a, http.StatusBadGateway, map[string]any{"message": "bad gateway"})
	if a.header.Get("X-Message-Id") != "" {
		t.Error("failed answer carried X-Message-Id")
	}
	if len(sb.Messages()) != 1 {
		t.Fatal("Store fault did not store")
	}
	sb.SetFault(nil)
	if got := searchIDs(t, srv, `unique_args['offer_id']="o-2"`, ""); len(got) != 1 {
		t.Fatalf("stored-then-failed message not searchable: %v", got)
	}

	sb.Reset()
	if len(sb.Messages()) != 0 || len(searchIDs(t, srv, `unique_args['offer_id']="o-2"`, "")) != 0 {
		t.Fatal("Reset kept messages")
	}
}

func TestFaultStoreThenHang(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stored := make(chan string, 1)
	sb.SetFault(func(*http.Request) sendgrid.Fault {
		return sendgrid.Fault{Store: true, Hang: make(chan struct{}), OnStore: func(m sendgrid.Message) {
			stored <- m.ID
			cancel()
		}}
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v3/mail/send", strings.NewReader(encode(t, validMail("o-h", "fan@example.com"))))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered HTTP %d despite the hang", resp.StatusCode)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	id := <-stored
	if msgs := sb.Messages(); len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("stored %v, want %s", msgs, id)
	}
}

// A hang without Store must end when the client leaves, even though the
// handler never read the body; otherwise httptest.Server.Close would block.
func TestFaultHangEndsWhenClientLeaves(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	sb.SetFault(func(*http.Request) sendgrid.Fault { return sendgrid.Fault{Hang: make(chan struct{})} })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v3/mail/send", strings.NewReader(encode(t, validMail("o-1", "fan@example.com"))))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered HTTP %d despite the hang", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	srv.Close() // returns only once the hung handler noticed the client left
	if len(sb.Messages()) != 0 {
		t.Fatal("hang without Store stored")
	}
}

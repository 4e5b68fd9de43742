package email_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/sandbox/oaspec"
	"github.com/crescendo-hq/crescendo/sandbox/sendgrid"
)

const (
	apiKey    = "SG.test-key.abc123"
	fromEmail = "offers@crescendo.example"
	fanEmail  = "fan@example.com"
)

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

type env struct {
	sandbox *sendgrid.Server
	srv     *httptest.Server
	clock   *fakeClock
	sender  *email.Sender
}

func newEnv(t *testing.T, mutate ...func(*sendgrid.Config)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}
	cfg := sendgrid.Config{APIKey: apiKey, Clock: clock.Now}
	for _, m := range mutate {
		m(&cfg)
	}
	sb, err := sendgrid.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	sender, err := email.New(email.Config{
		APIKey:     apiKey,
		FromEmail:  fromEmail,
		FromName:   "Crescendo Tickets",
		BaseURL:    srv.URL,
		HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sandbox: sb, srv: srv, clock: clock, sender: sender}
}

func offer(id string) email.Message {
	return email.Message{
		ToEmail:    fanEmail,
		ToName:     "Ada Fan",
		Subject:    "Your Tosca tickets are waiting",
		Text:       "Claim them before 21:00: https://cr.example/o/" + id,
		HTML:       `<p>Claim them before 21:00: <a href="https://cr.example/o/` + id + `">here</a></p>`,
		CustomArgs: map[string]string{"offer_id": id, "channel": "email"},
		Headers:    map[string]string{"List-Unsubscribe": "<https://cr.example/unsubscribe/ada>"},
	}
}

func TestNewValidatesConfig(t *testing.T) {
	ok := email.Config{APIKey: apiKey, FromEmail: fromEmail}
	if _, err := email.New(ok); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range map[string]func(*email.Config){
		"missing key":       func(c *email.Config) { c.APIKey = "" },
		"key with newline":  func(c *email.Config) { c.APIKey = "SG.a\nb" },
		"missing from":      func(c *email.Config) { c.FromEmail = "" },
		"from with name":    func(c *email.Config) { c.FromEmail = "Crescendo <offers@crescendo.example>" },
		"base url scheme":   func(c *email.Config) { c.BaseURL = "mailto:x@y.z" },
		"base url fragment": func(c *email.Config) { c.BaseURL = "https://api.sendgrid.com#x" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mutate(&cfg)
			if _, err := email.New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestSendPostsExactJSON(t *testing.T) {
	e := newEnv(t)
	res, err := e.sender.Send(t.Context(), offer("OF-42"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := e.sandbox.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sandbox received %d requests", len(msgs))
	}
	if res.ProviderID == "" || res.ProviderID != msgs[0].ID {
		t.Fatalf("ProviderID %q, sandbox X-Message-Id %q", res.ProviderID, msgs[0].ID)
	}
	// sendgrid-go's field order, map keys sorted, HTML escaped as
	// encoding/json does.
	want := `{"from":{"name":"Crescendo Tickets","email":"offers@crescendo.example"},` +
		`"subject":"Your Tosca tickets are waiting",` +
		`"personalizations":[{"to":[{"name":"Ada Fan","email":"fan@example.com"}],"custom_args":{"channel":"email","offer_id":"OF-42"}}],` +
		`"content":[{"type":"text/plain","value":"Claim them before 21:00: https://cr.example/o/OF-42"},` +
		`{"type":"text/html","value":"\u003cp\u003eClaim them before 21:00: \u003ca href=\"https://cr.example/o/OF-42\"\u003ehere\u003c/a\u003e\u003c/p\u003e"}],` +
		`"headers":{"List-Unsubscribe":"\u003chttps://cr.example/unsubscribe/ada\u003e"}}`
	if got := string(msgs[0].Raw); got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
	if got := msgs[0].Header.Get("Authorization"); got != "Bearer "+apiKey {
		t.Errorf("Authorization %q", got)
	}
	if got := msgs[0].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
}

func TestSendOmitsEmptyParts(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sender.Send(t.Context(), email.Message{ToEmail: fanEmail, Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	want := sendgrid.Mail{
		Personalizations: []sendgrid.Personalization{{To: []sendgrid.Address{{Email: fanEmail}}}},
		From:             &sendgrid.Address{Email: fromEmail, Name: "Crescendo Tickets"},
		Subject:          "s",
		Content:          []sendgrid.Content{{Type: "text/plain", Value: "t"}},
	}
	if got := e.sandbox.Messages()[0].Mail; !reflect.DeepEqual(got, want) {
		t.Fatalf("mail\n got %+v\nwant %+v", got, want)
	}
}

func providerError(t *testing.T, err error) *email.ProviderError {
	t.Helper()
	var pe *email.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *email.ProviderError", err, err)
	}
	return pe
}

func TestSendProviderErrors(t *testing.T) {
	e := newEnv(t)
	badKey, err := email.New(email.Config{APIKey: "SG.revoked", FromEmail: fromEmail, BaseURL: e.srv.URL, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	noSubject := offer("OF-1")
	noSubject.Subject = ""
	noBody := offer("OF-1")
	noBody.Text, noBody.HTML = "", ""
	reserved := offer("OF-1")
	reserved.Headers = map[string]string{"Reply-To": "x@example.com"}
	badRecipient := offer("OF-1")
	badRecipient.ToEmail = "fan@"

	for _, tc := range []struct {
		name      string
		sender    *email.Sender
		msg       email.Message
		fault     *sendgrid.Fault
		want      email.ProviderError
		permanent bool
		unknown   bool
	}{
		{name: "revoked key", sender: badKey, msg: offer("OF-1"),
			want: email.ProviderError{HTTPStatus: 401, Errors: []email.ErrorDetail{{Message: "The provided authorization grant is invalid, expired, or revoked"}}}, permanent: true},
		{name: "missing subject", msg: noSubject,
			want: email.ProviderError{HTTPStatus: 400, Errors: []email.ErrorDetail{{Field: "subject", Message: "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."}}}, permanent: true},
		{name: "missing content", msg: noBody,
			want: email.ProviderError{HTTPStatus: 400, Errors: []email.ErrorDetail{{Field: "content", Message: "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."}}}, permanent: true},
		{name: "reserved header", msg: reserved,
			want: email.ProviderError{HTTPStatus: 400, Errors: []email.ErrorDetail{{Field: "headers", Message: `The header "Reply-To" is reserved and may not be set.`}}}, permanent: true},
		{name: "invalid recipient", msg: badRecipient,
			want: email.ProviderError{HTTPStatus: 400, Errors: []email.ErrorDetail{{Field: "personalizations.0.to.0.email", Message: "Does not contain a valid address."}}}, permanent: true},
		{name: "too large", msg: offer("OF-1"), fault: &sendgrid.Fault{Status: 413, Message: "payload too large"},
			want: email.ProviderError{HTTPStatus: 413, Errors: []email.ErrorDetail{{Message: "payload too large"}}}, permanent: true},
		{name: "rate limited", msg: offer("OF-1"), fault: &sendgrid.Fault{Status: 429, Message: "too many requests", RetryAfter: 2 * time.Second},
			want: email.ProviderError{HTTPStatus: 429, Errors: []email.ErrorDetail{{Message: "too many requests"}}, RetryAfter: 2 * time.Second}},
		{name: "server error", msg: offer("OF-1"), fault: &sendgrid.Fault{Status: 500},
			want: email.ProviderError{HTTPStatus: 500, Errors: []email.ErrorDetail{{Message: "internal server error"}}}, unknown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sandbox.SetFault(nil)
			if tc.fault != nil {
				f := *tc.fault
				e.sandbox.SetFault(func(*http.Request) sendgrid.Fault { return f })
			}
			sender := cmpOr(tc.sender, e.sender)
			_, err := sender.Send(t.Context(), tc.msg)
			pe := providerError(t, err)
			if !reflect.DeepEqual(*pe, tc.want) {
				t.Fatalf("got %+v\nwant %+v", *pe, tc.want)
			}
			if pe.Permanent() != tc.permanent {
				t.Errorf("Permanent() = %v, want %v", pe.Permanent(), tc.permanent)
			}
			if errors.Is(err, email.ErrOutcomeUnknown) != tc.unknown {
				t.Errorf("errors.Is(err, ErrOutcomeUnknown) = %v, want %v", !tc.unknown, tc.unknown)
			}
			if !strings.HasPrefix(err.Error(), "sending email: ") {
				t.Errorf("error lacks context: %v", err)
			}
		})
	}
	if n := len(e.sandbox.Messages()); n != 0 {
		t.Fatalf("rejected sends stored %d messages", n)
	}
}

func cmpOr(a, b *email.Sender) *email.Sender {
	if a != nil {
		return a
	}
	return b
}

func TestRetryAfterFromRateLimitReset(t *testing.T) {
	// SendGrid documents X-RateLimit-Reset; some answers carry only that.
	reset := time.Now().Add(90 * time.Second).Unix()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(reset))
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"errors":[{"message":"too many requests"}]}`)
	}))
	defer srv.Close()
	sender, err := email.New(email.Config{APIKey: apiKey, FromEmail: fromEmail, BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sender.Send(t.Context(), offer("OF-1"))
	pe := providerError(t, err)
	if pe.RetryAfter < 80*time.Second || pe.RetryAfter > 90*time.Second {
		t.Fatalf("RetryAfter %s, want about 90s", pe.RetryAfter)
	}
}

func TestSendLocalValidation(t *testing.T) {
	e := newEnv(t)
	m := offer("OF-1")
	m.ToEmail = ""
	if _, err := e.sender.Send(t.Context(), m); !errors.Is(err, email.ErrInvalidMessage) {
		t.Fatalf("err = %v, want ErrInvalidMessage", err)
	}
	if len(e.sandbox.Messages()) != 0 {
		t.Fatal("locally rejected message reached SendGrid")
	}
}

func TestSendHonoursDeadline(t *testing.T) {
	e := newEnv(t)
	e.sandbox.SetFault(func(*http.Request) sendgrid.Fault { return sendgrid.Fault{Hang: make(chan struct{})} })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := e.sender.Send(ctx, offer("OF-1"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, email.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want DeadlineExceeded and ErrOutcomeUnknown", err)
	}
}

func TestSendWithDoneContextSendsNothing(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.sender.Send(ctx, offer("OF-1"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, email.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want Canceled without ErrOutcomeUnknown", err)
	}
	if len(e.sandbox.Messages()) != 0 {
		t.Fatal("send with a done context reached SendGrid")
	}
}

func TestAcceptedButUnansweredThenFindSent(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e.sandbox.SetFault(func(r *http.Request) sendgrid.Fault {
		if r.URL.Path != "/v3/mail/send" {
			return sendgrid.Fault{}
		}
		return sendgrid.Fault{Store: true, Hang: make(chan struct{}), OnStore: func(sendgrid.Message) { cancel() }}
	})
	_, err := e.sender.Send(ctx, offer("OF-42"))
	if !errors.Is(err, email.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown wrapping Canceled", err)
	}
	stored := e.sandbox.Messages()
	if len(stored) != 1 {
		t.Fatalf("sandbox stored %d", len(stored))
	}
	msgID, found, err := e.sender.FindSent(t.Context(), "offer_id", "OF-42")
	if err != nil || !found || !strings.HasPrefix(msgID, stored[0].ID+".") {
		t.Fatalf("FindSent = %q, %v, %v; want a msg_id starting with %s.", msgID, found, err, stored[0].ID)
	}
}

func TestFindSent(t *testing.T) {
	e := newEnv(t)
	var queries []url.Values
	var mu sync.Mutex
	e.sandbox.SetFault(func(r *http.Request) sendgrid.Fault {
		if r.Method == http.MethodGet {
			mu.Lock()
			queries = append(queries, r.URL.Query())
			mu.Unlock()
		}
		return sendgrid.Fault{}
	})
	first, err := e.sender.Send(t.Context(), offer("OF-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	second, err := e.sender.Send(t.Context(), offer("OF-2"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		key, value, wantPrefix string
	}{
		{"offer_id", "OF-1", first.ProviderID},
		{"offer_id", "OF-2", second.ProviderID},
		{"offer_id", "OF-3", ""},
		{"campaign", "OF-1", ""},
	} {
		msgID, found, err := e.sender.FindSent(t.Context(), tc.key, tc.value)
		if err != nil {
			t.Fatalf("%s=%s: %v", tc.key, tc.value, err)
		}
		if tc.wantPrefix == "" {
			if found || msgID != "" {
				t.Errorf("%s=%s: found %q, want nothing", tc.key, tc.value, msgID)
			}
			continue
		}
		if !found || !strings.HasPrefix(msgID, tc.wantPrefix+".") {
			t.Errorf("%s=%s: got %q %v, want prefix %s.", tc.key, tc.value, msgID, found, tc.wantPrefix)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	want := url.Values{"query": {`unique_args['offer_id']="OF-1"`}, "limit": {"10"}}
	if len(queries) == 0 || !reflect.DeepEqual(queries[0], want) {
		t.Fatalf("activity query %v, want %v", queries, want)
	}

	for _, bad := range [][2]string{{"offer id", "x"}, {"", "x"}, {"offer_id", ""}, {"offer_id", `a"b`}, {"offer_id", `a\b`}} {
		if _, _, err := e.sender.FindSent(t.Context(), bad[0], bad[1]); !errors.Is(err, email.ErrInvalidMessage) {
			t.Errorf("FindSent(%q, %q): err = %v, want ErrInvalidMessage", bad[0], bad[1], err)
		}
	}
}

func TestFindSentBeforeActivityCatchesUp(t *testing.T) {
	e := newEnv(t, func(c *sendgrid.Config) { c.ActivityDelay = time.Minute })
	res, err := e.sender.Send(t.Context(), offer("OF-7"))
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := e.sender.FindSent(t.Context(), "offer_id", "OF-7"); err != nil || found {
		t.Fatalf("found before Email Activity caught up: %v %v", found, err)
	}
	e.clock.Advance(time.Minute)
	msgID, found, err := e.sender.FindSent(t.Context(), "offer_id", "OF-7")
	if err != nil || !found || !strings.HasPrefix(msgID, res.ProviderID) {
		t.Fatalf("after catching up: %q %v %v", msgID, found, err)
	}
}

func TestFindSentProviderError(t *testing.T) {
	e := newEnv(t)
	badKey, err := email.New(email.Config{APIKey: "SG.revoked", FromEmail: fromEmail, BaseURL: e.srv.URL, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = badKey.FindSent(t.Context(), "offer_id", "OF-1")
	if pe := providerError(t, err); pe.HTTPStatus != 401 || !pe.Permanent() {
		t.Fatalf("got %+v", *pe)
	}
	if !strings.HasPrefix(err.Error(), "finding sent email: ") {
		t.Errorf("error lacks context: %v", err)
	}
}

func TestConcurrentSends(t *testing.T) {
	e := newEnv(t)
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := e.sender.Send(t.Context(), offer(fmt.Sprintf("OF-%d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := len(e.sandbox.Messages()); got != n {
		t.Fatalf("%d messages, want %d", got, n)
	}
}

// What sendgrid-go sent must be a request SendGrid's spec describes.
func TestCapturedRequestMatchesSpec(t *testing.T) {
	doc, err := oaspec.Load(oaspec.SendGridMailSend)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := doc.RequestSchema("/v3/mail/send", "post", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	for _, m := range []email.Message{offer("OF-1"), {ToEmail: fanEmail, Subject: "s", HTML: "<p>h</p>"}} {
		e.sandbox.Reset()
		if _, err := e.sender.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		raw := e.sandbox.Messages()[0].Raw
		v, err := oaspec.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range doc.Validate(schema, v, oaspec.Mode{Closed: true}) {
			t.Errorf("captured body violates the spec: %v\n%s", err, raw)
		}
		var generic map[string]any
		_ = json.Unmarshal(raw, &generic)
		for _, name := range oaspec.Required(schema) {
			if _, ok := generic[name]; !ok {
				t.Errorf("required %s not sent", name)
			}
		}
	}
}

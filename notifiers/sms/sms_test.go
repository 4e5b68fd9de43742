package sms_test

import (
	"context"
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

	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/sandbox/oaspec"
	"github.com/crescendo-hq/crescendo/sandbox/twilio"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "s3cr3tT0ken"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	ourNumber  = "+14155550199"
	fanNumber  = "+14155550100"
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
	sandbox *twilio.Server
	srv     *httptest.Server
	clock   *fakeClock
	sender  *sms.Sender
}

func newEnv(t *testing.T, mutate ...func(*sms.Config)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}
	sb, err := twilio.New(twilio.Config{AccountSID: accountSID, AuthToken: authToken, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	cfg := sms.Config{
		AccountSID: accountSID,
		AuthToken:  authToken,
		From:       ourNumber,
		BaseURL:    srv.URL,
		HTTPClient: srv.Client(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	sender, err := sms.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{sandbox: sb, srv: srv, clock: clock, sender: sender}
}

func TestNewValidatesConfig(t *testing.T) {
	ok := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: ourNumber}
	if _, err := sms.New(ok); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range map[string]func(*sms.Config){
		"account sid":       func(c *sms.Config) { c.AccountSID = "AC12" },
		"empty token":       func(c *sms.Config) { c.AuthToken = "" },
		"token punctuation": func(c *sms.Config) { c.AuthToken = "abc-def" },
		"from national":     func(c *sms.Config) { c.From = "4155550199" },
		"from bad service":  func(c *sms.Config) { c.From = "MG12" },
		"base url scheme":   func(c *sms.Config) { c.BaseURL = "ftp://example.com" },
		"base url no host":  func(c *sms.Config) { c.BaseURL = "http://" },
		"base url query":    func(c *sms.Config) { c.BaseURL = "http://example.com?x=1" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mutate(&cfg)
			if _, err := sms.New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestSendPostsExactForm(t *testing.T) {
	e := newEnv(t)
	res, err := e.sender.Send(t.Context(), sms.Message{
		To:             fanNumber,
		Body:           "Two tickets for Tosca are yours until 21:00: https://cr.example/o/abc",
		ValidityPeriod: 10 * time.Minute,
		StatusCallback: "https://hooks.crescendo.example/twilio/status",
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := e.sandbox.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sandbox received %d messages", len(msgs))
	}
	want := url.Values{
		"To":             {fanNumber},
		"From":           {ourNumber},
		"Body":           {"Two tickets for Tosca are yours until 21:00: https://cr.example/o/abc"},
		"ValidityPeriod": {"600"},
		"StatusCallback": {"https://hooks.crescendo.example/twilio/status"},
	}
	if !reflect.DeepEqual(msgs[0].Form, want) {
		t.Fatalf("form\n got %v\nwant %v", msgs[0].Form, want)
	}
	if res != (sms.Result{ProviderID: msgs[0].SID, Status: "queued", Segments: 1}) {
		t.Fatalf("result %+v, sandbox sid %s", res, msgs[0].SID)
	}
}

func TestSendOptionalFieldsOmitted(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sender.Send(t.Context(), sms.Message{To: fanNumber, Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	want := url.Values{"To": {fanNumber}, "From": {ourNumber}, "Body": {"hi"}}
	if got := e.sandbox.Messages()[0].Form; !reflect.DeepEqual(got, want) {
		t.Fatalf("form %v, want %v", got, want)
	}
}

func TestSendViaMessagingService(t *testing.T) {
	e := newEnv(t, func(c *sms.Config) { c.From = serviceSID })
	res, err := e.sender.Send(t.Context(), sms.Message{To: fanNumber, Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"To": {fanNumber}, "MessagingServiceSid": {serviceSID}, "Body": {"hi"}}
	if got := e.sandbox.Messages()[0].Form; !reflect.DeepEqual(got, want) {
		t.Fatalf("form %v, want %v", got, want)
	}
	if res.Status != "accepted" || res.Segments != 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestValidityPeriod(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{1500 * time.Millisecond, "2"},
		{time.Second, "1"},
		{sms.MaxValidityPeriod, "36000"},
	} {
		e.sandbox.Reset()
		if _, err := e.sender.Send(t.Context(), sms.Message{To: fanNumber, Body: "hi", ValidityPeriod: tc.in}); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := e.sandbox.Messages()[0].Form.Get("ValidityPeriod"); got != tc.want {
			t.Errorf("ValidityPeriod %s sent as %q, want %q", tc.in, got, tc.want)
		}
	}

	e.sandbox.Reset()
	for name, m := range map[string]sms.Message{
		"too long": {To: fanNumber, Body: "hi", ValidityPeriod: sms.MaxValidityPeriod + time.Second},
		"negative": {To: fanNumber, Body: "hi", ValidityPeriod: -time.Second},
		"no To":    {Body: "hi"},
		"no Body":  {To: fanNumber},
	} {
		_, err := e.sender.Send(t.Context(), m)
		if !errors.Is(err, sms.ErrInvalidMessage) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage", name, err)
		}
	}
	if n := len(e.sandbox.Messages()); n != 0 {
		t.Fatalf("locally rejected messages reached the sandbox: %d", n)
	}
}

func providerError(t *testing.T, err error) *sms.ProviderError {
	t.Helper()
	var pe *sms.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *sms.ProviderError", err, err)
	}
	return pe
}

func TestSendProviderErrors(t *testing.T) {
	e := newEnv(t)
	e.sandbox.OptOut("+14155550111")
	badAuth, err := sms.New(sms.Config{AccountSID: accountSID, AuthToken: "wrong", From: ourNumber, BaseURL: e.srv.URL, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		sender    *sms.Sender
		to        string
		fault     *twilio.Fault
		want      sms.ProviderError
		permanent bool
		unknown   bool
	}{
		{name: "bad credentials", sender: badAuth, to: fanNumber,
			want: sms.ProviderError{HTTPStatus: 401, Code: 20003, Message: "Authenticate", MoreInfo: "https://www.twilio.com/docs/errors/20003"}, permanent: true},
		{name: "invalid number", to: "+1415CALLME",
			want: sms.ProviderError{HTTPStatus: 400, Code: 21211, Message: "The 'To' number +1415CALLME is not a valid phone number.", MoreInfo: "https://www.twilio.com/docs/errors/21211"}, permanent: true},
		{name: "opted out", to: "+14155550111",
			want: sms.ProviderError{HTTPStatus: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient", MoreInfo: "https://www.twilio.com/docs/errors/21610"}, permanent: true},
		{name: "not a mobile number", to: fanNumber, fault: &twilio.Fault{Status: 400, Code: 21614},
			want: sms.ProviderError{HTTPStatus: 400, Code: 21614, Message: "'To' number is not a valid mobile number", MoreInfo: "https://www.twilio.com/docs/errors/21614"}, permanent: true},
		{name: "rate limited", to: fanNumber, fault: &twilio.Fault{Status: 429, RetryAfter: 3 * time.Second},
			want: sms.ProviderError{HTTPStatus: 429, Code: 20429, Message: "Too Many Requests", MoreInfo: "https://www.twilio.com/docs/errors/20429", RetryAfter: 3 * time.Second}},
		{name: "server error", to: fanNumber, fault: &twilio.Fault{Status: 500},
			want: sms.ProviderError{HTTPStatus: 500, Code: 20500, Message: "Internal Server Error", MoreInfo: "https://www.twilio.com/docs/errors/20500"}, unknown: true},
		{name: "unavailable", to: fanNumber, fault: &twilio.Fault{Status: 503, RetryAfter: time.Second},
			want: sms.ProviderError{HTTPStatus: 503, Code: 20503, Message: "Service Unavailable", MoreInfo: "https://www.twilio.com/docs/errors/20503", RetryAfter: time.Second}, unknown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sandbox.SetFault(nil)
			if tc.fault != nil {
				f := *tc.fault
				e.sandbox.SetFault(func(*http.Request) twilio.Fault { return f })
			}
			sender := tc.sender
			if sender == nil {
				sender = e.sender
			}
			_, err := sender.Send(t.Context(), sms.Message{To: tc.to, Body: "hi"})
			pe := providerError(t, err)
			if *pe != tc.want {
				t.Fatalf("got %+v\nwant %+v", *pe, tc.want)
			}
			if pe.Permanent() != tc.permanent {
				t.Errorf("Permanent() = %v, want %v", pe.Permanent(), tc.permanent)
			}
			if errors.Is(err, sms.ErrOutcomeUnknown) != tc.unknown {
				t.Errorf("errors.Is(err, ErrOutcomeUnknown) = %v, want %v", !tc.unknown, tc.unknown)
			}
			if !strings.HasPrefix(err.Error(), "sending message: ") {
				t.Errorf("error lacks context: %v", err)
			}
		})
	}
	if n := len(e.sandbox.Messages()); n != 0 {
		t.Fatalf("rejected sends stored %d messages", n)
	}
}

func TestSendUndecodableErrorAnswer(t *testing.T) {
	// A proxy in front of Twilio answering with HTML, not the sandbox.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>502 Bad Gateway</html>")
	}))
	defer proxy.Close()
	sender, err := sms.New(sms.Config{AccountSID: accountSID, AuthToken: authToken, From: ourNumber, BaseURL: proxy.URL, HTTPClient: proxy.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sender.Send(t.Context(), sms.Message{To: fanNumber, Body: "hi"})
	pe := providerError(t, err)
	if pe.HTTPStatus != 502 || pe.Code != 0 || pe.RetryAfter != 7*time.Second || pe.Permanent() || !errors.Is(err, sms.ErrOutcomeUnknown) {
		t.Fatalf("got %+v (permanent %v)", *pe, pe.Permanent())
	}
}

func TestSendHonoursDeadline(t *testing.T) {
	e := newEnv(t)
	e.sandbox.SetFault(func(*http.Request) twilio.Fault { return twilio.Fault{Hang: make(chan struct{})} })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := e.sender.Send(ctx, sms.Message{To: fanNumber, Body: "hi"})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, sms.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want DeadlineExceeded and ErrOutcomeUnknown", err)
	}
	var pe *sms.ProviderError
	if errors.As(err, &pe) {
		t.Fatalf("a timeout surfaced as a provider answer: %v", pe)
	}
}

func TestSendWithDoneContextSendsNothing(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.sender.Send(ctx, sms.Message{To: fanNumber, Body: "hi"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, sms.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want Canceled without ErrOutcomeUnknown", err)
	}
	if len(e.sandbox.Messages()) != 0 {
		t.Fatal("a send with a done context reached Twilio")
	}
}

// The scenario FindSent exists for: Twilio accepts the message, the client
// never sees the answer, and the retry must not send it twice.
func TestAcceptedButUnansweredThenFindSent(t *testing.T) {
	e := newEnv(t)
	since := e.clock.Now().Add(-time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e.sandbox.SetFault(func(r *http.Request) twilio.Fault {
		if r.Method != http.MethodPost {
			return twilio.Fault{}
		}
		return twilio.Fault{Store: true, Hang: make(chan struct{}), OnStore: func(twilio.Message) { cancel() }}
	})
	_, err := e.sender.Send(ctx, sms.Message{To: fanNumber, Body: "Offer OF-42: claim at https://cr.example/o/42"})
	if !errors.Is(err, sms.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown wrapping Canceled", err)
	}
	stored := e.sandbox.Messages()
	if len(stored) != 1 {
		t.Fatalf("sandbox stored %d messages", len(stored))
	}

	sid, found, err := e.sender.FindSent(t.Context(), fanNumber, since, "OF-42")
	if err != nil || !found || sid != stored[0].SID {
		t.Fatalf("FindSent = %q, %v, %v; want %q, true, nil", sid, found, err, stored[0].SID)
	}
}

func TestFindSent(t *testing.T) {
	e := newEnv(t)
	var listQueries []url.Values
	var mu sync.Mutex
	e.sandbox.SetFault(func(r *http.Request) twilio.Fault {
		if r.Method == http.MethodGet {
			mu.Lock()
			listQueries = append(listQueries, r.URL.Query())
			mu.Unlock()
		}
		return twilio.Fault{}
	})
	send := func(to, body string) string {
		t.Helper()
		res, err := e.sender.Send(t.Context(), sms.Message{To: to, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return res.ProviderID
	}
	before := e.clock.Now()
	first := send(fanNumber, "Offer OF-1 for you")
	e.clock.Advance(time.Hour)
	afterFirst := e.clock.Now()
	second := send(fanNumber, "Offer OF-2 for you")
	send("+14155550222", "Offer OF-3 for someone else")

	for _, tc := range []struct {
		name     string
		to       string
		since    time.Time
		contains string
		want     string
	}{
		{"first offer", fanNumber, before, "OF-1", first},
		{"second offer", fanNumber, before, "OF-2", second},
		{"sent before since", fanNumber, afterFirst, "OF-1", ""},
		{"never sent", fanNumber, before, "OF-9", ""},
		{"sent to another number", fanNumber, before, "OF-3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sid, found, err := e.sender.FindSent(t.Context(), tc.to, tc.since, tc.contains)
			if err != nil {
				t.Fatal(err)
			}
			if sid != tc.want || found != (tc.want != "") {
				t.Fatalf("FindSent = %q, %v; want %q", sid, found, tc.want)
			}
		})
	}

	mu.Lock()
	defer mu.Unlock()
	want := url.Values{
		"To":        {fanNumber},
		"From":      {ourNumber},
		"DateSent>": {before.UTC().Format(time.RFC3339)},
		"PageSize":  {"100"},
	}
	if len(listQueries) == 0 || !reflect.DeepEqual(listQueries[0], want) {
		t.Fatalf("list query %v, want %v", listQueries, want)
	}

	if _, _, err := e.sender.FindSent(t.Context(), fanNumber, before, ""); !errors.Is(err, sms.ErrInvalidMessage) {
		t.Fatalf("empty contains: err = %v", err)
	}
}

func TestFindSentFollowsPages(t *testing.T) {
	e := newEnv(t)
	target, err := e.sender.Send(t.Context(), sms.Message{To: fanNumber, Body: "Offer OF-OLD"})
	if err != nil {
		t.Fatal(err)
	}
	// FindSent pages 100 at a time, newest first; push the target to page 2.
	for i := range 100 {
		if _, err := e.sender.Send(t.Context(), sms.Message{To: fanNumber, Body: fmt.Sprintf("Offer OF-%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var pages int
	var mu sync.Mutex
	e.sandbox.SetFault(func(r *http.Request) twilio.Fault {
		mu.Lock()
		pages++
		mu.Unlock()
		return twilio.Fault{}
	})
	sid, found, err := e.sender.FindSent(t.Context(), fanNumber, e.clock.Now().Add(-time.Hour), "OF-OLD")
	if err != nil || !found || sid != target.ProviderID {
		t.Fatalf("FindSent = %q, %v, %v; want %q", sid, found, err, target.ProviderID)
	}
	mu.Lock()
	defer mu.Unlock()
	if pages != 2 {
		t.Fatalf("FindSent fetched %d pages, want 2", pages)
	}
}

func TestFindSentProviderError(t *testing.T) {
	e := newEnv(t)
	e.sandbox.SetFault(func(*http.Request) twilio.Fault { return twilio.Fault{Status: 429, RetryAfter: time.Second} })
	_, _, err := e.sender.FindSent(t.Context(), fanNumber, e.clock.Now(), "x")
	pe := providerError(t, err)
	if pe.HTTPStatus != 429 || pe.RetryAfter != time.Second || pe.Permanent() {
		t.Fatalf("got %+v", *pe)
	}
	if !strings.HasPrefix(err.Error(), "finding sent message: ") {
		t.Errorf("error lacks context: %v", err)
	}
}

func TestBaseURLWithPathAndDefaultClient(t *testing.T) {
	sb, err := twilio.New(twilio.Config{AccountSID: accountSID, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/twilio/", http.StripPrefix("/twilio", sb))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// No HTTPClient: the default transport and timeout are used.
	sender, err := sms.New(sms.Config{AccountSID: accountSID, AuthToken: authToken, From: ourNumber, BaseURL: srv.URL + "/twilio/"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sender.Send(t.Context(), sms.Message{To: fanNumber, Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sb.Messages(); len(got) != 1 || got[0].SID != res.ProviderID {
		t.Fatalf("sandbox got %v, result %+v", got, res)
	}
}

func TestConcurrentSends(t *testing.T) {
	e := newEnv(t)
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := e.sender.Send(t.Context(), sms.Message{To: fanNumber, Body: fmt.Sprintf("Offer %d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := len(e.sandbox.Messages()); got != n {
		t.Fatalf("%d messages, want %d", got, n)
	}
}

// What twilio-go sent must be a request Twilio's spec describes.
func TestCapturedRequestMatchesSpec(t *testing.T) {
	doc, err := oaspec.Load(oaspec.TwilioMessages)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := doc.RequestSchema("/2010-04-01/Accounts/{AccountSid}/Messages.json", "post", "application/x-www-form-urlencoded")
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{ourNumber, serviceSID} {
		e := newEnv(t, func(c *sms.Config) { c.From = from })
		if _, err := e.sender.Send(t.Context(), sms.Message{
			To: fanNumber, Body: "hi", ValidityPeriod: time.Minute, StatusCallback: "https://hooks.example.com/s",
		}); err != nil {
			t.Fatal(err)
		}
		form := e.sandbox.Messages()[0].Form
		for _, err := range doc.Validate(schema, doc.FormToJSON(schema, form), oaspec.Mode{Closed: true}) {
			t.Errorf("from %s: captured form violates the spec: %v", from, err)
		}
		for _, name := range oaspec.Required(schema) {
			if form.Get(name) == "" {
				t.Errorf("from %s: required %s not sent", from, name)
			}
		}
	}
}

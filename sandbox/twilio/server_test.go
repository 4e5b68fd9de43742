package twilio_test

import (
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

	"github.com/crescendo-hq/crescendo/sandbox/twilio"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "s3cr3tT0ken"
	apiKeySID  = "SK0123456789abcdef0123456789abcdef"
	apiSecret  = "k3ySecret"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	fanNumber  = "+14155550100"
	ourNumber  = "+14155550199"
)

var messagesPath = "/2010-04-01/Accounts/" + accountSID + "/Messages.json"

// fakeClock is a settable clock safe for concurrent reads.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newSandbox(t *testing.T, mutate ...func(*twilio.Config)) (*twilio.Server, *httptest.Server, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}
	cfg := twilio.Config{
		AccountSID: accountSID,
		AuthToken:  authToken,
		APIKeys:    map[string]string{apiKeySID: apiSecret},
		Clock:      clock.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	sb, err := twilio.New(cfg)
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
	body   map[string]any
}

func do(t *testing.T, ctx context.Context, method, rawURL string, form url.Values, user, pass string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
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
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("answer is not a JSON object: %v: %s", err, raw)
		}
	}
	return a
}

func validForm() url.Values {
	return url.Values{
		"To":             {fanNumber},
		"From":           {ourNumber},
		"Body":           {"Your tickets are waiting: https://cr.example/o/abc"},
		"ValidityPeriod": {"600"},
		"StatusCallback": {"https://hooks.example.com/twilio/status"},
	}
}

func wantTwilioError(t *testing.T, a answer, status, code int, message string) {
	t.Helper()
	want := map[string]any{
		"code":      float64(code),
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    float64(status),
	}
	if a.status != status || !reflect.DeepEqual(a.body, want) {
		t.Fatalf("got HTTP %d %v, want HTTP %d %v", a.status, a.body, status, want)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	ok := twilio.Config{AccountSID: accountSID, AuthToken: authToken}
	if _, err := twilio.New(ok); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range map[string]func(*twilio.Config){
		"missing account":  func(c *twilio.Config) { c.AccountSID = "" },
		"malformed sid":    func(c *twilio.Config) { c.AccountSID = "AC123" },
		"missing token":    func(c *twilio.Config) { c.AuthToken = "" },
		"bad api key sid":  func(c *twilio.Config) { c.APIKeys = map[string]string{"XX1": "a"} },
		"empty api secret": func(c *twilio.Config) { c.APIKeys = map[string]string{apiKeySID: ""} },
		"bad sender":       func(c *twilio.Config) { c.Senders = []string{"4155550100"} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mutate(&cfg)
			if _, err := twilio.New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestCreateMessage(t *testing.T) {
	sb, srv, clock := newSandbox(t)
	form := validForm()

	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken)
	if a.status != http.StatusCreated {
		t.Fatalf("status %d, body %s", a.status, a.raw)
	}
	sid, _ := a.body["sid"].(string)
	if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(sid) {
		t.Fatalf("sid %q is not SM + 32 hex", sid)
	}
	created := clock.Now().Format(time.RFC1123Z)
	want := map[string]any{
		"account_sid":           accountSID,
		"api_version":           "2010-04-01",
		"body":                  form.Get("Body"),
		"date_created":          created,
		"date_sent":             created,
		"date_updated":          created,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  ourNumber,
		"num_media":             "0",
		"num_segments":          "1",
		"price":                 nil,
		"price_unit":            nil,
		"sid":                   sid,
		"status":                "queued",
		"to":                    fanNumber,
		"uri":                   "/2010-04-01/Accounts/" + accountSID + "/Messages/" + sid + ".json",
		"subresource_uris":      map[string]any{"media": "/2010-04-01/Accounts/" + accountSID + "/Messages/" + sid + "/Media.json"},
		"messaging_service_sid": a.body["messaging_service_sid"],
	}
	if !reflect.DeepEqual(a.body, want) {
		t.Errorf("resource mismatch\n got %v\nwant %v", a.body, want)
	}
	if ms, _ := a.body["messaging_service_sid"].(string); !regexp.MustCompile(`^MG[0-9a-f]{32}$`).MatchString(ms) {
		t.Errorf("default messaging_service_sid %q is not MG + 32 hex", ms)
	}
	if got := a.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type %q", got)
	}
	if created != "Sat, 14 Mar 2026 09:26:53 +0000" {
		t.Errorf("date format %q is not Twilio's RFC 2822 form", created)
	}

	msgs := sb.Messages()
	if len(msgs) != 1 {
		t.Fatalf("stored %d messages, want 1", len(msgs))
	}
	if !reflect.DeepEqual(msgs[0].Form, form) {
		t.Errorf("stored form %v, want %v", msgs[0].Form, form)
	}
	if msgs[0].SID != sid || msgs[0].To != fanNumber || msgs[0].NumSegments != 1 {
		t.Errorf("stored %+v", msgs[0])
	}

	// Messages returns a snapshot: mutating it must not reach the sandbox.
	msgs[0].Form.Set("To", "+10000000000")
	if got := sb.Messages()[0].Form.Get("To"); got != fanNumber {
		t.Errorf("snapshot shares memory with the sandbox: To became %q", got)
	}
}

func TestCreateMessageWithAPIKey(t *testing.T) {
	_, srv, _ := newSandbox(t)
	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), apiKeySID, apiSecret)
	if a.status != http.StatusCreated {
		t.Fatalf("API key auth: status %d, body %s", a.status, a.raw)
	}
}

func TestAuthentication(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	for name, creds := range map[string][2]string{
		"none":             {"", ""},
		"wrong token":      {accountSID, "nope"},
		"token of api key": {apiKeySID, authToken},
		"unknown user":     {"ACffffffffffffffffffffffffffffffff", authToken},
	} {
		t.Run(name, func(t *testing.T) {
			a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), creds[0], creds[1])
			wantTwilioError(t, a, http.StatusUnauthorized, 20003, "Authenticate")
			if a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(sb.Messages()); n != 0 {
		t.Fatalf("unauthenticated requests stored %d messages", n)
	}
}

func TestOtherAccountIsNotFound(t *testing.T) {
	_, srv, _ := newSandbox(t)
	path := "/2010-04-01/Accounts/ACffffffffffffffffffffffffffffffff/Messages.json"
	a := do(t, t.Context(), http.MethodPost, srv.URL+path, validForm(), accountSID, authToken)
	wantTwilioError(t, a, http.StatusNotFound, 20404, "The requested resource "+path+" was not found")
}

func TestCreateMessageValidation(t *testing.T) {
	sb, srv, _ := newSandbox(t, func(c *twilio.Config) { c.Senders = []string{ourNumber} })
	sb.OptOut("+14155550111")
	cases := []struct {
		name   string
		mutate func(url.Values)
		code   int
		msg    string
	}{
		{"missing To", func(f url.Values) { f.Del("To") }, 21604, "A 'To' phone number is required."},
		{"missing From and service", func(f url.Values) { f.Del("From") }, 21603, "A 'From' phone number is required."},
		{"missing Body, MediaUrl and ContentSid", func(f url.Values) { f.Del("Body") }, 21602, "Message body is required."},
		{"To not E.164", func(f url.Values) { f.Set("To", "4155550100") }, 21211, "The 'To' number 4155550100 is not a valid phone number."},
		{"To with letters", func(f url.Values) { f.Set("To", "+1415CALLME") }, 21211, "The 'To' number +1415CALLME is not a valid phone number."},
		{"From not E.164", func(f url.Values) { f.Set("From", "0800") }, 21212, "The 'From' number 0800 is not a valid phone number, shortcode, or alphanumeric sender ID."},
		{"From not owned", func(f url.Values) { f.Set("From", "+14155550198") }, 21606, "The From phone number +14155550198 is not a valid, SMS-capable inbound phone number or short code for your account."},
		{"bad service sid", func(f url.Values) { f.Del("From"); f.Set("MessagingServiceSid", "MG1") }, 21701, "The Messaging Service Sid MG1 is invalid."},
		{"ValidityPeriod 0", func(f url.Values) { f.Set("ValidityPeriod", "0") }, 90014, "Validity Period should be positive integer"},
		{"ValidityPeriod not integer", func(f url.Values) { f.Set("ValidityPeriod", "1.5") }, 90014, "Validity Period should be positive integer"},
		{"ValidityPeriod 36001", func(f url.Values) { f.Set("ValidityPeriod", "36001") }, 90007, "Invalid validity period value: must be between 1 and 36000 seconds"},
		{"StatusCallback not a URL", func(f url.Values) { f.Set("StatusCallback", "not a url") }, 21609, "Invalid StatusCallback"},
		{"Body too long", func(f url.Values) { f.Set("Body", strings.Repeat("a", 1601)) }, 21617, "The concatenated message body exceeds the 1600 character limit."},
		{"enum violation", func(f url.Values) { f.Set("RiskCheck", "maybe") }, 20422, `Invalid RiskCheck: "maybe" is not one of [enable disable]`},
		{"opted out", func(f url.Values) { f.Set("To", "+14155550111") }, 21610, "Attempt to send to unsubscribed recipient"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := validForm()
			tc.mutate(form)
			a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken)
			wantTwilioError(t, a, http.StatusBadRequest, tc.code, tc.msg)
		})
	}
	if n := len(sb.Messages()); n != 0 {
		t.Fatalf("rejected requests stored %d messages", n)
	}

	// The boundaries themselves are accepted.
	for _, vp := range []string{"1", "36000"} {
		form := validForm()
		form.Set("ValidityPeriod", vp)
		if a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken); a.status != http.StatusCreated {
			t.Errorf("ValidityPeriod %s: status %d %s", vp, a.status, a.raw)
		}
	}
}

func TestCreateMessageIgnoresNonFormBodies(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	b, _ := json.Marshal(map[string]string{"To": fanNumber, "From": ourNumber, "Body": "hi"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+messagesPath, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(accountSID, authToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	wantTwilioError(t, answer{status: resp.StatusCode, body: body}, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	if len(sb.Messages()) != 0 {
		t.Fatal("a JSON body was accepted")
	}
}

func TestMessagingService(t *testing.T) {
	_, srv, _ := newSandbox(t)
	form := validForm()
	form.Del("From")
	form.Set("MessagingServiceSid", serviceSID)
	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken)
	if a.status != http.StatusCreated {
		t.Fatalf("status %d %s", a.status, a.raw)
	}
	if a.body["from"] != nil || a.body["status"] != "accepted" || a.body["num_segments"] != "0" || a.body["messaging_service_sid"] != serviceSID {
		t.Fatalf("service send answered %v", a.body)
	}
}

func TestSegments(t *testing.T) {
	_, srv, _ := newSandbox(t)
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"gsm single", strings.Repeat("a", 160), "1"},
		{"gsm concatenated", strings.Repeat("a", 161), "2"},
		{"gsm extension counts twice", strings.Repeat("€", 80), "1"},
		{"gsm extension overflow", strings.Repeat("€", 81), "2"},
		{"ucs2 single", strings.Repeat("é", 10) + strings.Repeat("ж", 60), "1"},
		{"ucs2 concatenated", strings.Repeat("ж", 71), "2"},
		{"ucs2 surrogate pairs", strings.Repeat("🎟", 36), "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := validForm()
			form.Set("Body", tc.body)
			a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken)
			if a.status != http.StatusCreated || a.body["num_segments"] != tc.want {
				t.Fatalf("got HTTP %d num_segments %v, want %s", a.status, a.body["num_segments"], tc.want)
			}
		})
	}
}

func TestFetchMessage(t *testing.T) {
	_, srv, _ := newSandbox(t)
	created := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken)
	uri := created.body["uri"].(string)

	got := do(t, t.Context(), http.MethodGet, srv.URL+uri, nil, accountSID, authToken)
	if got.status != http.StatusOK || !reflect.DeepEqual(got.body, created.body) {
		t.Fatalf("fetch: HTTP %d %v, want %v", got.status, got.body, created.body)
	}

	missing := "/2010-04-01/Accounts/" + accountSID + "/Messages/SMffffffffffffffffffffffffffffffff.json"
	wantTwilioError(t, do(t, t.Context(), http.MethodGet, srv.URL+missing, nil, accountSID, authToken),
		http.StatusNotFound, 20404, "The requested resource "+missing+" was not found")

	wantTwilioError(t, do(t, t.Context(), http.MethodGet, srv.URL+uri, nil, accountSID, "wrong"),
		http.StatusUnauthorized, 20003, "Authenticate")
}

func TestUnsupportedMethodAndPath(t *testing.T) {
	_, srv, _ := newSandbox(t)
	wantTwilioError(t, do(t, t.Context(), http.MethodDelete, srv.URL+messagesPath, nil, accountSID, authToken),
		http.StatusMethodNotAllowed, 20004, "Method not allowed")
	path := "/2010-04-01/Accounts/" + accountSID + "/Calls.json"
	wantTwilioError(t, do(t, t.Context(), http.MethodGet, srv.URL+path, nil, accountSID, authToken),
		http.StatusNotFound, 20404, "The requested resource "+path+" was not found")
}

// sendAt creates a message at the given clock time and returns its sid.
func sendAt(t *testing.T, srv *httptest.Server, clock *fakeClock, at time.Time, to, body string) string {
	t.Helper()
	clock.Set(at)
	form := validForm()
	form.Set("To", to)
	form.Set("Body", body)
	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken)
	if a.status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", a.status, a.raw)
	}
	return a.body["sid"].(string)
}

func listSIDs(t *testing.T, srv *httptest.Server, query url.Values) ([]string, answer) {
	t.Helper()
	a := do(t, t.Context(), http.MethodGet, srv.URL+messagesPath+"?"+query.Encode(), nil, accountSID, authToken)
	if a.status != http.StatusOK {
		t.Fatalf("list: HTTP %d %s", a.status, a.raw)
	}
	var sids []string
	for _, m := range a.body["messages"].([]any) {
		sids = append(sids, m.(map[string]any)["sid"].(string))
	}
	return sids, a
}

func TestListMessagesFilters(t *testing.T) {
	_, srv, clock := newSandbox(t)
	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	old := sendAt(t, srv, clock, day1, fanNumber, "old offer")
	other := sendAt(t, srv, clock, day2, "+14155550222", "someone else")
	recent := sendAt(t, srv, clock, day2.Add(time.Hour), fanNumber, "new offer")

	for _, tc := range []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"all, newest first", url.Values{}, []string{recent, other, old}},
		{"To", url.Values{"To": {fanNumber}}, []string{recent, old}},
		{"From", url.Values{"From": {"+19999999999"}}, nil},
		{"DateSent> timestamp is inclusive", url.Values{"To": {fanNumber}, "DateSent>": {day2.Add(time.Hour).Format(time.RFC3339)}}, []string{recent}},
		{"DateSent> timestamp excludes earlier", url.Values{"DateSent>": {day2.Add(time.Second).Format(time.RFC3339)}}, []string{recent}},
		{"DateSent> date covers the whole day", url.Values{"DateSent>": {"2026-03-02"}}, []string{recent, other}},
		{"DateSent< date covers the whole day", url.Values{"DateSent<": {"2026-03-01"}}, []string{old}},
		{"DateSent exact day", url.Values{"DateSent": {"2026-03-02"}}, []string{recent, other}},
		{"DateSent> RFC 2822", url.Values{"DateSent>": {"Mon, 02 Mar 2026 10:30:00 -0000"}}, []string{recent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := listSIDs(t, srv, tc.query)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	a := do(t, t.Context(), http.MethodGet, srv.URL+messagesPath+"?DateSent%3E=yesterday", nil, accountSID, authToken)
	if a.status != http.StatusBadRequest {
		t.Fatalf("unparseable DateSent>: HTTP %d", a.status)
	}
	a = do(t, t.Context(), http.MethodGet, srv.URL+messagesPath+"?PageSize=1001", nil, accountSID, authToken)
	if a.status != http.StatusBadRequest {
		t.Fatalf("PageSize above the spec's maximum: HTTP %d", a.status)
	}
}

func TestListMessagesPaging(t *testing.T) {
	_, srv, clock := newSandbox(t)
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var want []string
	for i := range 5 {
		sid := sendAt(t, srv, clock, start.Add(time.Duration(i)*time.Minute), fanNumber, fmt.Sprintf("offer %d", i))
		want = append([]string{sid}, want...)
	}

	var got []string
	next := messagesPath + "?" + url.Values{"To": {fanNumber}, "PageSize": {"2"}}.Encode()
	pages := 0
	for next != "" {
		pages++
		a := do(t, t.Context(), http.MethodGet, srv.URL+next, nil, accountSID, authToken)
		if a.status != http.StatusOK {
			t.Fatalf("page %d: HTTP %d %s", pages, a.status, a.raw)
		}
		if a.body["page_size"] != float64(2) || a.body["page"] != float64(pages-1) {
			t.Fatalf("page %d metadata: %v", pages, a.body)
		}
		if !strings.Contains(a.body["first_page_uri"].(string), "PageSize=2&Page=0") {
			t.Errorf("first_page_uri %v", a.body["first_page_uri"])
		}
		for _, m := range a.body["messages"].([]any) {
			got = append(got, m.(map[string]any)["sid"].(string))
		}
		next, _ = a.body["next_page_uri"].(string)
	}
	if pages != 3 || !reflect.DeepEqual(got, want) {
		t.Fatalf("paged %d pages %v, want 3 pages %v", pages, got, want)
	}
}

func TestFaultWithoutStore(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	sb.SetFault(func(r *http.Request) twilio.Fault {
		if r.Method == http.MethodPost && r.PostForm.Get("To") == fanNumber {
			return twilio.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond}
		}
		return twilio.Fault{}
	})
	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken)
	wantTwilioError(t, a, http.StatusTooManyRequests, 20429, "Too Many Requests")
	if got := a.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (rounded up)", got)
	}
	if len(sb.Messages()) != 0 {
		t.Fatal("a faulted request without Store was stored")
	}

	// The fault function sees parsed form values and can spare requests.
	form := validForm()
	form.Set("To", "+14155550222")
	if a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken); a.status != http.StatusCreated {
		t.Fatalf("unfaulted request: HTTP %d", a.status)
	}

	sb.SetFault(func(*http.Request) twilio.Fault {
		return twilio.Fault{Status: http.StatusBadRequest, Code: 21614, Message: "'To' number is not a valid mobile number"}
	})
	wantTwilioError(t, do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken),
		http.StatusBadRequest, 21614, "'To' number is not a valid mobile number")

	sb.Reset()
	if a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken); a.status != http.StatusCreated {
		t.Fatalf("Reset did not clear the fault: HTTP %d", a.status)
	}
	if n := len(sb.Messages()); n != 1 {
		t.Fatalf("after Reset and one send: %d messages", n)
	}
}

func TestFaultStoreThenFail(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	sb.SetFault(func(*http.Request) twilio.Fault {
		return twilio.Fault{Status: http.StatusInternalServerError, Store: true}
	})
	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken)
	wantTwilioError(t, a, http.StatusInternalServerError, 20500, "Internal Server Error")
	msgs := sb.Messages()
	if len(msgs) != 1 {
		t.Fatalf("Store fault kept %d messages, want 1", len(msgs))
	}
	// The stored message is visible to fetch, as it would be on Twilio.
	sb.SetFault(nil)
	uri := "/2010-04-01/Accounts/" + accountSID + "/Messages/" + msgs[0].SID + ".json"
	if got := do(t, t.Context(), http.MethodGet, srv.URL+uri, nil, accountSID, authToken); got.status != http.StatusOK {
		t.Fatalf("fetching the stored message: HTTP %d", got.status)
	}

	// Invalid requests are rejected even under a Store fault.
	sb.SetFault(func(*http.Request) twilio.Fault { return twilio.Fault{Status: 500, Store: true} })
	form := validForm()
	form.Del("To")
	wantTwilioError(t, do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken),
		http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	if n := len(sb.Messages()); n != 1 {
		t.Fatalf("invalid request stored: %d messages", n)
	}
}

func TestFaultStoreThenHang(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hang := make(chan struct{}) // never closed: only the client leaving ends the hang
	stored := make(chan string, 1)
	sb.SetFault(func(*http.Request) twilio.Fault {
		return twilio.Fault{Store: true, Hang: hang, OnStore: func(m twilio.Message) {
			stored <- m.SID
			cancel() // the client gives up right after Twilio accepted
		}}
	})

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+messagesPath, strings.NewReader(validForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(accountSID, authToken)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request answered HTTP %d despite the hang", resp.StatusCode)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	sid := <-stored
	msgs := sb.Messages()
	if len(msgs) != 1 || msgs[0].SID != sid {
		t.Fatalf("accepted-then-hung message not stored: %v, want sid %s", msgs, sid)
	}
}

func TestFaultHangReleased(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	hang := make(chan struct{})
	reached := make(chan struct{})
	sb.SetFault(func(*http.Request) twilio.Fault {
		close(reached)
		return twilio.Fault{Status: http.StatusServiceUnavailable, Hang: hang}
	})
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+messagesPath, strings.NewReader(validForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(accountSID, authToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var r result
		r.status = resp.StatusCode
		r.err = json.NewDecoder(resp.Body).Decode(&r.body)
		done <- r
	}()
	<-reached
	select {
	case r := <-done:
		t.Fatalf("answered before the hang was released: %+v", r)
	default:
	}
	close(hang)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantTwilioError(t, answer{status: r.status, body: r.body}, http.StatusServiceUnavailable, 20503, "Service Unavailable")
	if len(sb.Messages()) != 0 {
		t.Fatal("hung fault without Store stored a message")
	}
}

func TestConcurrentCreates(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			form := validForm()
			form.Set("Body", fmt.Sprintf("offer %d", i))
			req, _ := http.NewRequest(http.MethodPost, srv.URL+messagesPath, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(accountSID, authToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("HTTP %d", resp.StatusCode)
			}
		})
		_ = sb.Messages() // read while writers run, for the race detector
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, m := range sb.Messages() {
		seen[m.SID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}
}

// A hang must end when the client leaves, whatever the route; otherwise
// httptest.Server.Close would block.
func TestFaultHangEndsWhenClientLeaves(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	sb.SetFault(func(*http.Request) twilio.Fault { return twilio.Fault{Hang: make(chan struct{})} })
	for _, tc := range []struct {
		method, path string
		body         string
	}{
		{http.MethodPost, messagesPath, validForm().Encode()},
		{http.MethodGet, messagesPath, ""},
		{http.MethodPost, "/2010-04-01/Accounts/" + accountSID + "/Calls.json", "To=%2B1"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(accountSID, authToken)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s %s answered HTTP %d despite the hang", tc.method, tc.path, resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s %s: err = %v", tc.method, tc.path, err)
		}
	}
	srv.Close() // returns only once every hung handler noticed its client left
	if len(sb.Messages()) != 0 {
		t.Fatal("hang without Store stored")
	}
}

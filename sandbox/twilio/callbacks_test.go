package twilio_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/twilio/twilio-go/client"
)

// hookSink is an account's webhook: it checks each request's signature with
// twilio-go's validator, keeps the forms and answers with answer.
type hookSink struct {
	mu     sync.Mutex
	forms  []url.Values
	failed []string
}

func newHookSink(t *testing.T, answer string) (*hookSink, *httptest.Server) {
	t.Helper()
	s := &hookSink{}
	validator := client.NewRequestValidator(authToken)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		s.mu.Lock()
		defer s.mu.Unlock()
		if !validator.ValidateBody(srv.URL+r.URL.RequestURI(), body, r.Header.Get("X-Twilio-Signature")) {
			s.failed = append(s.failed, r.URL.Path)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		s.forms = append(s.forms, form)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *hookSink) received(t *testing.T) []url.Values {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failed) > 0 {
		t.Fatalf("twilio-go refused the sandbox's signature on %v", s.failed)
	}
	return s.forms
}

func TestReportPostsASignedStatusCallbackAndMovesTheMessage(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	sink, hooks := newHookSink(t, "")
	form := validForm()
	form.Set("StatusCallback", hooks.URL+"/status?offer=1")
	sid, _ := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken).body["sid"].(string)

	code, err := sb.Report(t.Context(), nil, sid, "undelivered", 30003, "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("Report: %d, %v", code, err)
	}
	got := sink.received(t)
	if len(got) != 1 || got[0].Get("MessageSid") != sid || got[0].Get("MessageStatus") != "undelivered" ||
		got[0].Get("ErrorCode") != "30003" || got[0].Get("To") != fanNumber || got[0].Get("AccountSid") != accountSID {
		t.Fatalf("callbacks %v", got)
	}
	if m := sb.Messages()[0]; m.Status != "undelivered" {
		t.Fatalf("the message is %s, want undelivered", m.Status)
	}
	// A message without a StatusCallback reports to the fallback; an unknown one is an error.
	form.Del("StatusCallback")
	other, _ := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken).body["sid"].(string)
	if code, err := sb.Report(t.Context(), nil, other, "delivered", 0, hooks.URL+"/fallback"); err != nil || code != http.StatusOK {
		t.Fatalf("Report to the fallback: %d, %v", code, err)
	}
	if got := sink.received(t); len(got) != 2 || got[1].Has("ErrorCode") {
		t.Fatalf("callbacks %v", got)
	}
	if _, err := sb.Report(t.Context(), nil, "SM00000000000000000000000000000000", "delivered", 0, hooks.URL); err == nil {
		t.Fatal("Report on an unknown message: no error")
	}
}

func TestReplyPostsASignedIncomingMessageAndStopOptsOut(t *testing.T) {
	sb, srv, _ := newSandbox(t)
	const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response/>`
	sink, hooks := newHookSink(t, twiml)
	code, answer, err := sb.Reply(t.Context(), nil, hooks.URL+"/inbound", fanNumber, ourNumber, " stop ")
	if err != nil || code != http.StatusOK || answer != twiml {
		t.Fatalf("Reply: %d %q, %v", code, answer, err)
	}
	if got := sink.received(t); len(got) != 1 || got[0].Get("From") != fanNumber || got[0].Get("Body") != " stop " || got[0].Get("MessageSid") == "" {
		t.Fatalf("incoming messages %v", got)
	}
	a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken)
	wantTwilioError(t, a, http.StatusBadRequest, 21610, "Attempt to send to unsubscribed recipient")
	if _, _, err := sb.Reply(t.Context(), nil, hooks.URL+"/inbound", fanNumber, ourNumber, "START"); err != nil {
		t.Fatal(err)
	}
	if a := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken); a.status != http.StatusCreated {
		t.Fatalf("after START: %d %s", a.status, a.raw)
	}
}

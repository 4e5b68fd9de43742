package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestErrorCodeNamesProviderErrorsByTheirCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("sending: %w", &sms.ProviderError{HTTPStatus: 400, Code: 21610}), "21610"},
		{&sms.ProviderError{HTTPStatus: 429}, "429"},
		{&email.ProviderError{HTTPStatus: 413}, "413"},
		{fmt.Errorf("sending: %w", sms.ErrOutcomeUnknown), "unknown_outcome"},
		{fmt.Errorf("sending: %w", email.ErrInvalidMessage), "invalid_message"},
		{context.Canceled, "canceled"},
		{errors.New("dial tcp: connection refused"), "transport"},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestCatalogNamesEveryMetricOnce(t *testing.T) {
	names := Catalog()
	for _, want := range []string{"crescendo_events_read_total", "crescendo_consumer_lag", "crescendo_offers", "crescendo_delivery_latency_seconds"} {
		if _, ok := names[want]; !ok {
			t.Errorf("%s missing from %v", want, names)
		}
	}
	for n, typ := range names {
		if !strings.HasPrefix(n, Namespace+"_") || (typ != "counter" && typ != "gauge" && typ != "histogram") {
			t.Errorf("metric %s of type %q", n, typ)
		}
		if typ == "counter" && !strings.HasSuffix(n, "_total") {
			t.Errorf("counter %s does not end in _total", n)
		}
	}
}

func TestMiddlewareLabelsByRoutePatternNotPath(t *testing.T) {
	m := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := m.Middleware(mux, nil)
	for _, path := range []string{"/v1/users/a", "/v1/users/b", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`crescendo_http_requests_total{code="418",route="GET /v1/users/{id}"} 2`,
		`crescendo_http_requests_total{code="404",route="unmatched"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, "/v1/users/a") {
		t.Error("a raw path became a label")
	}
}

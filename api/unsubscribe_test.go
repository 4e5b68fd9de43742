package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// The store is what serves unsubscribes in production.
var _ api.OptOuts = (*store.Store)(nil)

// The unsubscribe pages are HTML, checked as the strings the document says.
func init() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder) }

// noPartners is a Partners that knows no one: unsubscribe links need none.
type noPartners struct{}

func (noPartners) PartnerByKey(context.Context, string) (string, bool, error) { return "", false, nil }
func (noPartners) FanByAccount(context.Context, string, string) (uuid.UUID, bool, error) {
	return uuid.Nil, false, nil
}

// optOuts records the opt-outs it is asked for.
type optOuts struct {
	mu   sync.Mutex
	got  []store.ChannelConsent
	fail error
}

func (o *optOuts) OptOut(_ context.Context, c store.ChannelConsent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.got = append(o.got, c)
	return nil
}

func (o *optOuts) taken() []store.ChannelConsent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]store.ChannelConsent(nil), o.got...)
}

// unsubscribeDesk serves the unsubscribe links and checks every answer
// against the OpenAPI document.
type unsubscribeDesk struct {
	url    string
	router routers.Router
	signer *offers.Signer
}

var unsubscribeClock = time.Date(2031, 3, 3, 12, 0, 0, 0, time.UTC)

func newUnsubscribeDesk(t *testing.T, opts api.OptOuts) *unsubscribeDesk {
	t.Helper()
	signer, err := offers.NewSigner("k1", map[string][]byte{"k1": bytes.Repeat([]byte{3}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{
		Partners: noPartners{}, Push: push.NewHub(), OptOuts: opts, Unsubscribe: signer,
		Clock: func() time.Time { return unsubscribeClock }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &unsubscribeDesk{url: srv.URL, router: router, signer: signer}
}

// call makes a request, wants its status, and checks the answer against the
// document.
func (d *unsubscribeDesk) call(t *testing.T, want int, method, path, contentType string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, d.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, got, want)
	}
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the OpenAPI document: %v", method, path, err)
	}
	err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(got)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Fatalf("%s %s: the %d answer %s does not match the OpenAPI document: %v", method, path, resp.StatusCode, got, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: got}
}

const oneClick = "List-Unsubscribe=One-Click"

func TestOneClickUnsubscribeSuppressesTheAddress(t *testing.T) {
	opts := &optOuts{}
	d := newUnsubscribeDesk(t, opts)
	token := d.signer.UnsubscribeToken("Fan@Example.com")

	// Opening the link shows a page and changes nothing.
	r := d.call(t, http.StatusOK, http.MethodGet, "/u/"+token, "", nil)
	page := string(r.body)
	if !strings.Contains(page, "F***@Example.com") || !strings.Contains(page, `<form method="post">`) ||
		!strings.Contains(page, `name="List-Unsubscribe" value="One-Click"`) || strings.Contains(page, "Fan@") {
		t.Fatalf("page:\n%s", page)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "Content-Type": "text/html; charset=utf-8"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("CSP %q", r.header.Get("Content-Security-Policy"))
	}
	if got := opts.taken(); len(got) != 0 {
		t.Fatalf("a GET unsubscribed: %v", got)
	}

	// A mail client's one-click POST (RFC 8058), urlencoded or multipart;
	// then the page's button.
	d.call(t, http.StatusOK, http.MethodPost, "/u/"+token, "application/x-www-form-urlencoded", []byte(oneClick))
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	if err := mw.WriteField("List-Unsubscribe", "One-Click"); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	d.call(t, http.StatusOK, http.MethodPost, "/u/"+token, mw.FormDataContentType(), mp.Bytes())
	r = d.call(t, http.StatusOK, http.MethodPost, "/u/"+token, "application/x-www-form-urlencoded", []byte(oneClick+"&via=page"))
	if !strings.Contains(string(r.body), "no more ticket offers by email at F***@Example.com") {
		t.Fatalf("answer:\n%s", r.body)
	}
	got := opts.taken()
	want := store.ChannelConsent{Channel: offers.ChannelEmail, Address: "Fan@Example.com", Reason: "unsubscribe",
		Source: "crescendo:one-click", Wording: oneClick, Actor: "recipient", At: unsubscribeClock}
	if len(got) != 3 || got[0] != want || got[1] != want {
		t.Fatalf("opt-outs %+v, want twice %+v", got, want)
	}
	want.Source, want.Wording = "crescendo:unsubscribe-page", "unsubscribe button"
	if got[2] != want {
		t.Fatalf("the page's opt-out %+v, want %+v", got[2], want)
	}
	// A POST without the one-click body still unsubscribes, and says so.
	d.call(t, http.StatusOK, http.MethodPost, "/u/"+token, "", nil)
	want.Source, want.Wording = "crescendo:one-click", "a POST without List-Unsubscribe=One-Click"
	if got := opts.taken(); len(got) != 4 || got[3] != want {
		t.Fatalf("opt-outs %+v, want last %+v", got, want)
	}
}

func TestUnsubscribeRefusesTokensItDidNotMake(t *testing.T) {
	opts := &optOuts{}
	d := newUnsubscribeDesk(t, opts)
	other, err := offers.NewSigner("k1", map[string][]byte{"k1": bytes.Repeat([]byte{4}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := offers.NewSigner("k9", map[string][]byte{"k9": bytes.Repeat([]byte{4}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]struct {
		status int
		code   string
	}{
		other.UnsubscribeToken("fan@example.com"):    {http.StatusForbidden, "token_forged"},
		stranger.UnsubscribeToken("fan@example.com"): {http.StatusForbidden, "token_unknown_key"},
		"not-a-token": {http.StatusBadRequest, "token_malformed"},
		d.signer.Token(uuid.New(), unsubscribeClock): {http.StatusBadRequest, "token_malformed"}, // an offer's token
	} {
		r := d.call(t, want.status, http.MethodPost, "/u/"+token, "application/x-www-form-urlencoded", []byte(oneClick))
		if code := r.json(t)["code"]; code != want.code {
			t.Errorf("token %s: code %v, want %s", token, code, want.code)
		}
		if r := d.call(t, want.status, http.MethodGet, "/u/"+token, "", nil); !strings.Contains(string(r.body), "This link does not work") {
			t.Errorf("GET %s:\n%s", token, r.body)
		}
	}
	if got := opts.taken(); len(got) != 0 {
		t.Fatalf("a forged link unsubscribed: %v", got)
	}
	opts.fail = errors.New("database down")
	d.call(t, http.StatusInternalServerError, http.MethodPost, "/u/"+d.signer.UnsubscribeToken("fan@example.com"), "application/x-www-form-urlencoded", []byte(oneClick))
}

// Through the store: the address is suppressed and the fan's consent ledger
// says so.
func TestUnsubscribeThroughTheStore(t *testing.T) {
	st, err := store.Open(t.Context(), store.Config{URL: pgtemp.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	fan := uuid.New()
	if _, err := st.Pool().Exec(t.Context(), `INSERT INTO fans (id, display_name, email) VALUES ($1, 'Ada', 'ada@example.com')`, fan); err != nil {
		t.Fatal(err)
	}
	d := newUnsubscribeDesk(t, st)
	token := d.signer.UnsubscribeToken("Ada@Example.com")
	for range 2 {
		d.call(t, http.StatusOK, http.MethodPost, "/u/"+token, "application/x-www-form-urlencoded", []byte(oneClick))
	}
	if ok, err := st.Suppressed(t.Context(), offers.ChannelEmail, "ada@example.com"); err != nil || !ok {
		t.Fatalf("suppressed %v, %v", ok, err)
	}
	var n int
	if err := st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM consent_ledger WHERE fan_id = $1 AND action = 'opt_out'
		AND channel = 'email' AND address = 'ada@example.com' AND source = 'crescendo:one-click'`, fan).Scan(&n); err != nil || n != 2 {
		t.Fatalf("ledger entries %d, %v; want one per request", n, err)
	}
	if err := st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM suppressions WHERE channel = 'email' AND lifted_at IS NULL`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("active suppressions %d, %v", n, err)
	}
}

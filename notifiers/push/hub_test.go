package push

import (
	"bytes"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nopStore stands in for the database where none is reached.
type nopStore struct{ Store }

func TestHubRoutesToTheFansStreams(t *testing.T) {
	ctx := t.Context()
	h := NewHub()
	a, b := uuid.New(), uuid.New()
	if h.Online(a) {
		t.Fatal("online before subscribing")
	}
	s1, err := h.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := h.OpenAfter(ctx, a, 7) // an in-process hub keeps nothing to resume from
	if err != nil {
		t.Fatal(err)
	}
	if !h.Online(a) || h.Online(b) {
		t.Fatal("online state wrong")
	}
	if _, ok := s1.Cursor(); ok {
		t.Fatal("an in-process stream claims a resume point")
	}
	if n := h.Send(a, Message{ID: "1", Event: "offer", Data: []byte(`{}`)}); n != 2 {
		t.Fatalf("delivered to %d streams, want 2", n)
	}
	for i, s := range []*Stream{s1, s2} {
		<-s.Ready()
		msgs, err := s.Next(ctx)
		if err != nil || len(msgs) != 1 || msgs[0].ID != "1" {
			t.Fatalf("stream %d got %+v, %v", i+1, msgs, err)
		}
	}
	if n := h.Send(b, Message{ID: "2"}); n != 0 {
		t.Fatalf("delivered %d pushes to a fan with no stream", n)
	}
	if _, ok, err := h.Deliver(ctx, a, uuid.New(), "offer", []byte(`{"x":1}`)); !ok || err != nil {
		t.Fatalf("Deliver to an open stream: %v, %v", ok, err)
	}
	if _, _, err := h.Deliver(ctx, a, uuid.Nil, "two words", []byte(`{}`)); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Deliver with a bad event name: %v", err)
	}
	if _, _, err := h.Deliver(ctx, a, uuid.Nil, "offer", []byte(`{`)); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Deliver with data that is not JSON: %v", err)
	}
	s1.Close()
	s1.Close() // idempotent
	s2.Close()
	if h.Online(a) {
		t.Fatal("online after every stream closed")
	}
	if _, _, err := h.RegisterWebhook(ctx, "p", "https://example.com/hook"); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("webhook on an in-process hub: %v", err)
	}
}

func TestHubNeverBlocksOnASlowStream(t *testing.T) {
	h := NewHub()
	fan := uuid.New()
	s, err := h.Open(t.Context(), fan)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range subscriberBuffer {
		if h.Send(fan, Message{ID: string(rune('a' + i))}) != 1 {
			t.Fatalf("push %d refused before the buffer was full", i)
		}
	}
	if h.Send(fan, Message{ID: "overflow"}) != 0 {
		t.Fatal("push accepted past the buffer")
	}
}

func TestWebhookURLs(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/crescendo?v=1", false, true},
		{"https://93.184.215.14:8443/hook", false, true},
		{"http://hooks.example.com/", false, false},
		{"hooks.example.com/x", false, false},
		{"https://user:pass@hooks.example.com/", false, false},
		{"https://hooks.example.com/#x", false, false},
		{"https:///path", false, false},
		{"https://127.0.0.1:9000/", false, false},
		{"https://[::1]/", false, false},
		{"https://10.1.2.3/", false, false},
		{"https://169.254.169.254/latest/meta-data", false, false},
		{"https://127.0.0.1:9000/", true, true},
		{"https://example.com/" + string(bytes.Repeat([]byte("a"), 2048)), false, false},
	} {
		err := checkWebhookURL(tc.url, tc.allowPrivate)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidWebhookURL)) {
			t.Errorf("%.60s (private allowed: %v): %v, want ok %v", tc.url, tc.allowPrivate, err, tc.ok)
		}
	}
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false,
		"100.64.0.1": false, "127.0.0.1": false, "::1": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false,
		"::ffff:127.0.0.1": false, "224.0.0.1": false,
	} {
		if got := public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("public(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestTheDefaultClientRefusesPrivateAddresses(t *testing.T) {
	c := webhookClient(time.Second, false)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://127.0.0.1:1/", nil)
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("connected to a loopback address")
	}
	if got := describe(err, time.Second); got == "" || bytes.Contains([]byte(got), []byte("https://")) {
		t.Fatalf("described as %q: want the reason without the URL", got)
	}
}

func TestSecretsAreSealedForTheirPartner(t *testing.T) {
	h, err := New(Config{Store: nopStore{}, SecretKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := h.seal("streamly", "whsec_abc")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("whsec_abc")) {
		t.Fatal("the sealed secret holds the secret")
	}
	if got, err := h.unseal("streamly", sealed); err != nil || string(got) != "whsec_abc" {
		t.Fatalf("unsealed %q, %v", got, err)
	}
	if _, err := h.unseal("other", sealed); err == nil {
		t.Fatal("another partner's secret opened")
	}
	other, err := New(Config{Store: nopStore{}, SecretKey: bytes.Repeat([]byte{8}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.unseal("streamly", sealed); err == nil {
		t.Fatal("opened with another key")
	}
	if _, err := New(Config{Store: nopStore{}, SecretKey: []byte("short")}); err == nil {
		t.Fatal("accepted a short key")
	}
}

func TestBackoffDoublesWithJitterUpToItsCap(t *testing.T) {
	h := &Hub{cfg: Config{WebhookBackoff: time.Second, WebhookMaxBackoff: 10 * time.Second}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		for range 50 {
			if d := h.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := retryAfter("120"); d != 2*time.Minute {
		t.Fatalf("Retry-After 120: %s", d)
	}
	if d := retryAfter("soon"); d != 0 {
		t.Fatalf("Retry-After soon: %s", d)
	}
}

func TestSigningMatchesTheREADMEExample(t *testing.T) {
	// The example in the README's "In-app push" section, computed there with Python's hmac.
	body := `{"id":"1207","seq":42,"event":"offer","partner_user_id":"user-1","offer_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",` +
		`"created_at":"2026-11-23T20:00:00Z","data":{"offer_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","title":"Aurora Lane: The Roundhouse"}}`
	const want = "v1=dfcf810d34d46f418285640b43c136cfcd221c86dcccf2da9a9084bb8103c731"
	if got := sign([]byte("whsec_example"), 1795464000, []byte(body)); got != want {
		t.Fatalf("signature %s, want the README's %s", got, want)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte(want)) || !bytes.Contains(readme, []byte(body)) {
		t.Fatal("the README's webhook example changed: update this test with it")
	}
}

package ingest

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newService(t *testing.T, now *time.Time) *Service {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{URL: pgtemp.New(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	for _, p := range []string{"streamly", "otherapp"} {
		if err := st.PutPartner(t.Context(), store.Partner{ID: p, Name: p, APIKey: "pk_" + p}); err != nil {
			t.Fatal(err)
		}
	}
	dec, err := events.NewDecoder(events.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	s, err := New(Config{Store: st, Producer: nopProducer{}, Decoder: dec, SealKey: key, Rate: 10, MaxEvents: 20,
		ReplayWindow: time.Minute, Clock: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nopProducer stands for Kafka, which these tests do not reach.
type nopProducer struct{}

func (nopProducer) Produce(_ context.Context, _ []Record) error {
	return errors.New("not in these tests")
}

func TestVerifyTakesOnlyTheOwnSecretInTheWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newService(t, &now)
	ctx := t.Context()
	body := []byte(`[{"id":"1"}]`)
	ts := strconv.FormatInt(now.Unix(), 10)
	if err := s.Verify(ctx, "streamly", ts, "v1=00", body); !errors.Is(err, ErrNoSecret) {
		t.Errorf("before any secret: %v, want ErrNoSecret", err)
	}
	secret, err := s.RotateSecret(ctx, "streamly")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.RotateSecret(ctx, "otherapp")
	if err != nil {
		t.Fatal(err)
	}
	sig := Sign([]byte(secret), ts, body)
	if err := s.Verify(ctx, "streamly", ts, "v2=zz, "+sig, body); err != nil {
		t.Errorf("a good signature among others: %v", err)
	}
	for name, c := range map[string]struct{ partner, ts, sig string }{
		"another partner's secret": {"streamly", ts, Sign([]byte(other), ts, body)},
		"signed for another":       {"otherapp", ts, sig},
		"another timestamp":        {"streamly", strconv.FormatInt(now.Unix()+1, 10), sig},
		"too old":                  {"streamly", strconv.FormatInt(now.Add(-61*time.Second).Unix(), 10), Sign([]byte(secret), strconv.FormatInt(now.Add(-61*time.Second).Unix(), 10), body)},
		"from the future":          {"streamly", strconv.FormatInt(now.Add(61*time.Second).Unix(), 10), Sign([]byte(secret), strconv.FormatInt(now.Add(61*time.Second).Unix(), 10), body)},
		"no timestamp":             {"streamly", "", sig},
		"upper-case hex":           {"streamly", ts, "v1=" + upper(sig[3:])},
	} {
		if err := s.Verify(ctx, c.partner, c.ts, c.sig, body); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	// A rotation replaces the secret at once.
	if _, err := s.RotateSecret(ctx, "streamly"); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, "streamly", ts, sig, body); !errors.Is(err, ErrSignature) {
		t.Errorf("the old secret after rotation: %v", err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestAdmitHoldsEachPartnerToItsRate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newService(t, &now) // 10 events/s, burst 20
	if err := s.admit("streamly", 20); err != nil {
		t.Fatalf("a full burst: %v", err)
	}
	var limited *RateLimited
	if err := s.admit("streamly", 5); !errors.As(err, &limited) || limited.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the rate: %v, want a retry in 500ms", err)
	}
	if err := s.admit("otherapp", 20); err != nil {
		t.Errorf("another partner has its own bucket: %v", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := s.admit("streamly", 5); err != nil {
		t.Errorf("after the retry delay: %v", err)
	}
}

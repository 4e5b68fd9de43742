package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRecordsCarryTheIDsOfTheirContextAndNoContactPoints(t *testing.T) {
	var buf bytes.Buffer
	logger, err := New(&buf, "info", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithEventID(WithRequestID(context.Background(), "req-1"), "ev-9")
	logger.With(slog.String("component", "api")).InfoContext(ctx, "sending to +44 7700 900123 failed",
		slog.String("detail", "The 'To' number +14155550102 is not a valid phone number"),
		slog.Any("error", errors.New("mail to jo.bloggs+tix@example.co.uk bounced")),
		slog.Int("attempt", 2))
	logger.Debug("not at info level")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("one JSON line expected, got %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"msg": "sending to [phone] failed", "request_id": "req-1", "event_id": "ev-9", "component": "api",
		"detail": "The 'To' number [phone] is not a valid phone number", "error": "mail to [email] bounced", "attempt": 2.0,
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("want exactly one line: %q", buf.String())
	}
}

func TestRedactLeavesOrdinaryTextAlone(t *testing.T) {
	for _, s := range []string{"partition 3 at offset +12", "a+b=c", "user@host", "v1.2.3", "listen ev-0001 +5 points"} {
		if got := Redact(s); got != s {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
}

func TestNewRefusesUnknownSettings(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "loud", "json"); err == nil {
		t.Error("level loud accepted")
	}
	if _, err := New(&bytes.Buffer{}, "info", "xml"); err == nil {
		t.Error("format xml accepted")
	}
}

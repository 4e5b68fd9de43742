package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/config"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemoRunsTwiceAndResumes runs the demo as `crescendo demo --duration` does,
// then again on the same data dir and database: the second run must read only
// what it published itself (it resumed, it did not replay) and no fan may hold
// two offers for the same rule and tier.
func TestDemoRunsTwiceAndResumes(t *testing.T) {
	s, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s.DatabaseURL = pgtemp.New(t)
	s.DataDir = t.TempDir()
	s.EmbeddedAddr = "127.0.0.1:0"
	s.HTTPAddr = "127.0.0.1:0"
	s.Partitions = 4
	s.DeliveryWorkers = 8

	run := func() (Summary, string) {
		var out bytes.Buffer
		sum, err := Run(t.Context(), Config{Settings: s, Duration: 3 * time.Second, Rate: 400, Fans: 40, Out: &out,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return sum, out.String()
	}
	first, out := run()
	t.Log(out)
	if first.Published == 0 || first.Read == 0 || first.Read > first.Published {
		t.Fatalf("first run published %d, read %d", first.Published, first.Read)
	}
	if first.DeadLettered == 0 || first.Dropped == 0 {
		t.Errorf("first run dead-lettered %d and dropped %d; the simulator sends both kinds", first.DeadLettered, first.Dropped)
	}
	if first.OffersIssued == 0 || first.SMSAccepted+first.EmailAccepted+int(first.PushReceived) == 0 {
		t.Fatalf("first run issued %d offers and delivered none through the sandboxes or streams: %+v", first.OffersIssued, first)
	}
	for _, want := range []string{"events published", "summary after", "delivered (all runs) by channel"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	second, out := run()
	t.Log(out)
	// The second run reads what it published plus whatever the first published
	// but had not read when it stopped: nothing twice, nothing lost.
	if left := first.Published - first.Read; second.Read != second.Published+left {
		t.Fatalf("second run published %d and inherited %d unread, but read %d: it did not resume where the first stopped",
			second.Published, left, second.Read)
	}

	st, err := store.Open(context.Background(), store.Config{URL: s.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	offers, err := st.Offers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(offers)) != first.OffersIssued+second.OffersIssued {
		t.Errorf("%d offers stored, runs issued %d + %d", len(offers), first.OffersIssued, second.OffersIssued)
	}
	seen := map[string]bool{}
	for _, o := range offers {
		k := o.FanID.String() + o.RuleID + string(rune('0'+o.Tier))
		if seen[k] {
			t.Errorf("fan %s holds two offers for %s tier %d", o.FanID, o.RuleID, o.Tier)
		}
		seen[k] = true
	}
}

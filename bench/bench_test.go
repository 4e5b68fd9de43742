package bench

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/internal/pgtemp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunSmall runs the benchmark on a small load to keep the command working;
// the figures themselves come from `crescendo bench`, not from this test.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{Events: 20_000, Fans: 500, Performers: 50, Partitions: 4, AdminURL: pgtemp.AdminURL(), Out: &out}
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res.Print(&out, cfg)
	t.Log(out.String())
	if res.ConsumerRate <= 0 || res.BareRate <= 0 || res.BatchRate <= 0 || res.P99 < res.P50 || res.P50 <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
	if res.Pairs == 0 || res.Pairs > 500*50 || res.BytesPerPair <= 0 {
		t.Errorf("pairs %d, %.0f bytes/pair", res.Pairs, res.BytesPerPair)
	}
	if res.OffersIssued == 0 {
		t.Error("no offers issued: the load never crossed a threshold, so the offer path was not measured")
	}
	if runtime.GOOS == "linux" && (res.ProcessCPU <= 0 || !strings.Contains(out.String(), "µs per event")) {
		t.Errorf("no CPU figures on Linux: %+v", res)
	}
	if !strings.Contains(out.String(), "bytes per tracked (fan, performer) pair") {
		t.Error("report lacks the memory figure")
	}
}

func TestMedian(t *testing.T) {
	runs := []Result{
		{Events: 10, ConsumerRate: 300, BareRate: 1000, Ratio: 0.30, P99: 3 * time.Millisecond, BytesPerPair: 90},
		{Events: 10, ConsumerRate: 100, BareRate: 900, Ratio: 0.11, P99: 9 * time.Millisecond, BytesPerPair: 80},
		{Events: 10, ConsumerRate: 200, BareRate: 400, Ratio: 0.50, P99: 1 * time.Millisecond, BytesPerPair: 85},
	}
	m := Median(runs)
	if m.ConsumerRate != 200 || m.BareRate != 900 || m.Ratio != 0.30 || m.P99 != 3*time.Millisecond || m.BytesPerPair != 85 || m.Events != 10 {
		t.Fatalf("median = %+v", m)
	}
	if m := Median(runs[:2]); m.ConsumerRate != 300 || m.Ratio != 0.30 {
		t.Fatalf("median of two = %+v; want the upper middle figures", m)
	}
	var out bytes.Buffer
	PrintRuns(&out, Config{}, runs)
	if got := strings.Count(out.String(), "\nrun "); got != 3 || !strings.Contains(out.String(), "median of 3 runs") {
		t.Fatalf("report:\n%s", out.String())
	}
}

package scoring

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"
)

func BenchmarkApplyListen(b *testing.B) {
	s := newScorer(b, DefaultProfile())
	var st PairState
	ev := listenEv("aurora", t0, 3.5)
	dst := make([]Contribution, 0, 4)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Time = t0.Add(time.Duration(i) * 4 * time.Minute)
		_, dst = s.Apply(dst[:0], &st, ev, "aurora")
	}
}

func BenchmarkAffinity(b *testing.B) {
	s := fuzzTarget(b)
	text := "Can't wait for tonight!!! I don’t care what anyone says, I absolutely love @AuroraLane's new album 😍 #tour"
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if !s.Analyze(text, "aurora").Affinity {
			b.Fatal("no affinity")
		}
	}
}

// pairBytes builds n pairs the way a partition holds them, a map from a
// compact key to the state grown one insert at a time, and returns the heap
// bytes per pair, map overhead included.
func pairBytes(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := make(map[PairKey]PairState)
	for i := range n {
		var k PairKey
		binary.LittleEndian.PutUint64(k.Fan[:], uint64(i/4)*0x9E3779B97F4A7C15) // four performers a fan
		k.Performer = PerformerRef(i % 4)
		m[k] = PairState{ref: uint32(i), score: 1}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkPairMemory reports bytes per tracked pair over a million pairs.
func BenchmarkPairMemory(b *testing.B) {
	const n = 1_000_000
	var per float64
	for b.Loop() {
		per = pairBytes(n)
	}
	b.ReportMetric(per, "bytes/pair")
}

// The system's budget is 128 bytes per tracked pair; this keeps the state
// from growing past it unnoticed.
func TestPairMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million pairs")
	}
	if per := pairBytes(1_000_000); per > 128 {
		t.Fatalf("%.1f bytes per pair, budget 128", per)
	} else {
		t.Logf("%.1f bytes per pair", per)
	}
	if size := sizeofPair(); size != 28 {
		t.Fatalf("PairState is %d bytes, documented as 28", size)
	}
}

package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"
)

// Median summarizes runs field by field: each figure is the median of that
// figure over the runs (the upper one of the middle two for an even count).
// On a shared machine one run's figures swing by a fifth or more; the
// median of a few is what a change should be judged by.
func Median(runs []Result) Result {
	if len(runs) == 0 {
		return Result{}
	}
	var m Result
	m.Events = runs[0].Events
	m.ConsumerRate = medianOf(runs, func(r Result) float64 { return r.ConsumerRate })
	m.BareRate = medianOf(runs, func(r Result) float64 { return r.BareRate })
	m.Ratio = medianOf(runs, func(r Result) float64 { return r.Ratio })
	m.BatchRate = medianOf(runs, func(r Result) float64 { return r.BatchRate })
	m.BatchRatio = medianOf(runs, func(r Result) float64 { return r.BatchRatio })
	m.BatchTime = medianOf(runs, func(r Result) time.Duration { return r.BatchTime })
	m.ConsumerTime = medianOf(runs, func(r Result) time.Duration { return r.ConsumerTime })
	m.BareTime = medianOf(runs, func(r Result) time.Duration { return r.BareTime })
	m.P50 = medianOf(runs, func(r Result) time.Duration { return r.P50 })
	m.P99 = medianOf(runs, func(r Result) time.Duration { return r.P99 })
	m.BytesPerPair = medianOf(runs, func(r Result) float64 { return r.BytesPerPair })
	m.Pairs = medianOf(runs, func(r Result) int { return r.Pairs })
	m.OffersIssued = medianOf(runs, func(r Result) int64 { return r.OffersIssued })
	m.Checkpoints = medianOf(runs, func(r Result) int64 { return r.Checkpoints })
	m.CheckpointTime = medianOf(runs, func(r Result) time.Duration { return r.CheckpointTime })
	m.Contributions = medianOf(runs, func(r Result) int64 { return r.Contributions })
	m.ProcessCPU = medianOf(runs, func(r Result) time.Duration { return r.ProcessCPU })
	m.PostgresCPU = medianOf(runs, func(r Result) time.Duration { return r.PostgresCPU })
	m.OtherCPU = medianOf(runs, func(r Result) time.Duration { return r.OtherCPU })
	m.BareCPU = medianOf(runs, func(r Result) time.Duration { return r.BareCPU })
	m.WALBytes = medianOf(runs, func(r Result) int64 { return r.WALBytes })
	return m
}

func medianOf[T cmp.Ordered](runs []Result, f func(Result) T) T {
	vs := make([]T, len(runs))
	for i, r := range runs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// PrintRuns writes one line per run and, for more than one, their medians.
func PrintRuns(w io.Writer, cfg Config, runs []Result) {
	if len(runs) == 1 {
		runs[0].Print(w, cfg)
		return
	}
	fmt.Fprintln(w)
	for i, r := range runs {
		fmt.Fprintf(w, "run %d: consumer %9.0f events/s, bare %9.0f events/s, ratio %5.1f%% (%.1f%% of a batch fetch), p99 %s, %.0f bytes/pair\n",
			i+1, r.ConsumerRate, r.BareRate, 100*r.Ratio, 100*r.BatchRatio, r.P99, r.BytesPerPair)
	}
	fmt.Fprintf(w, "\nmedian of %d runs (each figure on its own; ratio is the median of the runs' ratios):", len(runs))
	Median(runs).Print(w, cfg)
}

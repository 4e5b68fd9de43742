package console

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// The plots are SVG drawn on the server: no script, and each comes with the
// same figures as a table for screen readers and for copying. Geometry is in
// the viewBox's units; the SVG scales to its container's width.
const (
	plotWidth = 640.0
	plotLeft  = 48.0  // room for the y axis' labels
	plotRight = 620.0 // right edge of the drawing area
)

// bar is one labelled bar of a plot.
type bar struct {
	Label      string
	N          int
	X, Y, W, H float64
	Class      string
	Share      float64
	Lo, Hi     float64 // a histogram bin's bounds
}

// funnelPlot is a rule's funnel, a chart per tier.
type funnelPlot struct {
	RuleID  string
	Version int
	Tiers   []funnelTierPlot
}

type funnelTierPlot struct {
	store.FunnelTier
	Bars    []bar
	Dropped []reasonCount
	Uplift  string
}

type reasonCount struct {
	Reason string
	N      int
}

func newFunnelPlot(f store.Funnel) funnelPlot {
	out := funnelPlot{RuleID: f.RuleID, Version: f.Version}
	for _, t := range f.Tiers {
		stages := []struct {
			label string
			n     int
		}{{"crossed", t.Crossed}, {"eligible", t.Eligible}, {"offered", t.Offered}, {"delivered", t.Delivered}, {"opened", t.Opened}, {"redeemed", t.Redeemed}}
		top := max(t.Crossed, t.Eligible, t.Offered, 1)
		tp := funnelTierPlot{FunnelTier: t}
		for i, s := range stages {
			// Widths are percentages of the largest stage; a stage of none
			// keeps a sliver, so that it reads as zero rather than missing.
			tp.Bars = append(tp.Bars, bar{Label: s.label, N: s.n, W: math.Max(100*float64(s.n)/float64(top), 0.5), Class: "stage-" + strconv.Itoa(i)})
		}
		for reason, n := range t.DroppedOut {
			tp.Dropped = append(tp.Dropped, reasonCount{reason, n})
		}
		slices.SortFunc(tp.Dropped, func(a, b reasonCount) int { return cmp.Or(b.N-a.N, cmp.Compare(a.Reason, b.Reason)) })
		if t.Holdout > 0 {
			tp.Uplift = fmt.Sprintf("%+.1f points", t.Uplift*100)
		}
		out.Tiers = append(out.Tiers, tp)
	}
	return out
}

// timelinePlot is offers issued and delivered per interval.
type timelinePlot struct {
	Range     string // 1h, 24h or 7d
	Ranges    []string
	Bucket    string
	Buckets   []store.TimelineBucket
	Issued    string // polyline points
	Delivered string
	Dots      []timelineDot
	YTicks    []tick
	XTicks    []tick
	Total     [2]int
	Error     string
	Height    float64
	Base      float64
}

type timelineDot struct {
	X, YIssued, YDelivered float64
}

type tick struct {
	Pos   float64
	Label string
}

// timelineRanges are the windows the timeline offers, with their buckets.
var timelineRanges = map[string]struct {
	span, bucket time.Duration
	format       string
}{
	"1h":  {time.Hour, 2 * time.Minute, "15:04"},
	"24h": {24 * time.Hour, time.Hour, "15:04"},
	"7d":  {7 * 24 * time.Hour, 6 * time.Hour, "Jan 2"},
}

// timeline reads and draws a rule's (or, for "", the organization's)
// offers over the window the range query asks for (1h by default).
func (c *Console) timeline(r *http.Request, s session, ruleID string) timelinePlot {
	name := r.URL.Query().Get("range")
	rg, ok := timelineRanges[name]
	if !ok {
		name, rg = "1h", timelineRanges["1h"]
	}
	tp := timelinePlot{Range: name, Ranges: []string{"1h", "24h", "7d"}, Bucket: rg.bucket.String(), Height: 200, Base: 170}
	until := c.cfg.Clock().UTC().Truncate(rg.bucket).Add(rg.bucket)
	buckets, err := c.cfg.Stats.OfferTimeline(r.Context(), s.OrgID, ruleID, until.Add(-rg.span), until, rg.bucket)
	if err != nil {
		c.logger.ErrorContext(r.Context(), "reading offer timeline", "error", err)
		tp.Error = "The timeline could not be read just now."
		return tp
	}
	tp.Buckets = buckets
	top := 1
	for _, b := range buckets {
		top = max(top, b.Issued, b.Delivered)
		tp.Total[0] += b.Issued
		tp.Total[1] += b.Delivered
	}
	top = niceCeil(top)
	height := tp.Base - 10
	step := (plotRight - plotLeft) / float64(max(len(buckets)-1, 1))
	y := func(n int) float64 { return tp.Base - height*float64(n)/float64(top) }
	for i, b := range buckets {
		x := plotLeft + float64(i)*step
		tp.Issued += fmt.Sprintf("%.1f,%.1f ", x, y(b.Issued))
		tp.Delivered += fmt.Sprintf("%.1f,%.1f ", x, y(b.Delivered))
		tp.Dots = append(tp.Dots, timelineDot{X: x, YIssued: y(b.Issued), YDelivered: y(b.Delivered)})
		if len(buckets) > 1 && (i == 0 || i == len(buckets)-1 || i == len(buckets)/2) {
			tp.XTicks = append(tp.XTicks, tick{Pos: x, Label: b.Start.Format(rg.format)})
		}
	}
	for _, n := range []int{0, top / 2, top} {
		tp.YTicks = append(tp.YTicks, tick{Pos: y(n), Label: strconv.Itoa(n)})
	}
	return tp
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten, for axis labels.
func niceCeil(n int) int {
	if n <= 2 {
		return 2
	}
	p := int(math.Pow(10, math.Floor(math.Log10(float64(n)))))
	for _, m := range []int{1, 2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return 10 * p
}

// distributionPlot is a histogram of a performer's fans' index values now,
// with the rule's tier thresholds and upper threshold drawn over it.
type distributionPlot struct {
	Fans       int
	Capped     bool
	Max        int
	Bars       []bar
	Thresholds []thresholdLine
	XTicks     []tick
	YTicks     []tick
	Error      string
	Base       float64
	Height     float64
}

type thresholdLine struct {
	X     float64
	Label string
	Above int // fans at or above it
	Upper bool
}

const distributionBins = 24

// distribution computes every sampled fan's index for the rule's performer
// with the scoring package's own explanation of it (the same sum the API's
// explanation shows) and bins the values.
func (c *Console) distribution(r *http.Request, s session, rule offers.Rule) distributionPlot {
	dp := distributionPlot{Base: 170, Height: 200}
	profile, ok := c.cfg.Scorers.Scorer().Profile(rule.PerformerID)
	if !ok {
		dp.Error = "The performer has no scoring profile on this server yet."
		return dp
	}
	fans, capped, err := c.cfg.Stats.PerformerContributions(r.Context(), s.OrgID, rule.PerformerID, c.cfg.MaxIndexFans)
	if err != nil {
		c.logger.ErrorContext(r.Context(), "reading contributions", "error", err)
		dp.Error = "The index values could not be read just now."
		return dp
	}
	dp.Fans, dp.Capped, dp.Max = len(fans), capped, c.cfg.MaxIndexFans
	at := c.cfg.Clock()
	values := make([]float64, len(fans))
	hi := 0.0
	for i, f := range fans {
		values[i] = scoring.Explain(profile, f.Contributions, f.Fact, at).Total
		hi = math.Max(hi, values[i])
	}
	for _, t := range rule.Tiers {
		hi = math.Max(hi, t.Threshold*1.1)
	}
	if rule.UpperThreshold > 0 {
		hi = math.Max(hi, rule.UpperThreshold*1.05)
	}
	hi = math.Max(float64(niceCeil(int(math.Ceil(hi)))), 1)
	counts := make([]int, distributionBins)
	for _, v := range values {
		counts[min(int(v/hi*distributionBins), distributionBins-1)]++
	}
	top := niceCeil(max(slices.Max(counts), 1))
	x := func(v float64) float64 { return plotLeft + (plotRight-plotLeft)*v/hi }
	binW := (plotRight - plotLeft) / distributionBins
	for i, n := range counts {
		h := (dp.Base - 20) * float64(n) / float64(top)
		lo := hi * float64(i) / distributionBins
		dp.Bars = append(dp.Bars, bar{N: n, X: plotLeft + float64(i)*binW + 1, W: binW - 2, Y: dp.Base - h, H: h,
			Lo: lo, Hi: lo + hi/distributionBins})
	}
	above := func(th float64) int {
		n := 0
		for _, v := range values {
			if v >= th {
				n++
			}
		}
		return n
	}
	for i, t := range rule.Tiers {
		dp.Thresholds = append(dp.Thresholds, thresholdLine{X: x(t.Threshold), Label: fmt.Sprintf("tier %d: %g", i+1, t.Threshold), Above: above(t.Threshold)})
	}
	if rule.UpperThreshold > 0 {
		dp.Thresholds = append(dp.Thresholds, thresholdLine{X: x(rule.UpperThreshold), Label: fmt.Sprintf("upper: %g", rule.UpperThreshold),
			Above: above(rule.UpperThreshold), Upper: true})
	}
	for _, n := range []int{0, top / 2, top} {
		dp.YTicks = append(dp.YTicks, tick{Pos: dp.Base - (dp.Base-20)*float64(n)/float64(top), Label: strconv.Itoa(n)})
	}
	for _, v := range []float64{0, hi / 2, hi} {
		dp.XTicks = append(dp.XTicks, tick{Pos: x(v), Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return dp
}

// sharesPlot is the human / suspect / automated split of the organization's
// fans, when bot classification is available.
type sharesPlot struct {
	Available bool
	Error     string
	Total     int
	Bars      []bar
}

func (c *Console) shares(r *http.Request, s session) sharesPlot {
	if c.cfg.Classifications == nil {
		return sharesPlot{}
	}
	counts, err := c.cfg.Classifications.ClassShares(r.Context(), s.OrgID)
	if err != nil {
		c.logger.ErrorContext(r.Context(), "reading classification shares", "error", err)
		return sharesPlot{Available: true, Error: "The classification shares could not be read just now."}
	}
	sp := sharesPlot{Available: true}
	for _, n := range counts {
		sp.Total += n
	}
	xpos := 0.0
	for _, cl := range []Class{ClassHuman, ClassSuspect, ClassAutomated} {
		share := 0.0
		if sp.Total > 0 {
			share = float64(counts[cl]) / float64(sp.Total)
		}
		w := (plotWidth - 20) * share
		sp.Bars = append(sp.Bars, bar{Label: string(cl), N: counts[cl], Share: share, X: 10 + xpos, W: w, Y: 0, H: 36, Class: "class-" + string(cl)})
		xpos += w
	}
	return sp
}

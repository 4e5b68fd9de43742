package scoring

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/events"
)

// Each signal earns its own weight, and only its own: distinct weights show
// which signal fired.
func TestSignalPointsAndWeights(t *testing.T) {
	p := testProfile()
	p.Weights = Weights{
		Affinity: 1.5, AffinityRecent: 2, Streaming: 3, PhotoTag: 0.5, PageView: 0.25, Follow: 4,
		Merch: 5, Donation: 6, Attendance: 7, Post: 8, Human: 9,
	}
	s := newScorer(t, p)
	far := show.AddDate(-1, 0, 0) // long before the show: no recent bonus
	cases := []struct {
		name string
		ev   events.Event
		want map[Signal]float64
	}{
		{"affinity post", postEv("I love Aurora Lane", far), map[Signal]float64{SignalAffinity: 1.5, SignalPost: 8}},
		{"affinity post before show", postEv("I love Aurora Lane", show.AddDate(0, -1, 0)), map[Signal]float64{SignalAffinity: 1.5, SignalAffinityRecent: 2, SignalPost: 8}},
		{"post without affinity", postEv("Aurora Lane tickets are out", far), map[Signal]float64{SignalPost: 8}},
		{"negated post scores nothing", postEv("I don't like Aurora Lane", far), map[Signal]float64{}},
		{"post about someone else", postEv("I love pizza", far), map[Signal]float64{}},
		{"listen reaching threshold", listenEv("aurora", far, 60), map[Signal]float64{SignalStreaming: 3}},
		{"listen below threshold", listenEv("aurora", far, 59), map[Signal]float64{}},
		{"photo tag", photoEv("aurora", far), map[Signal]float64{SignalPhotoTag: 0.5}},
		{"page view", pageEv("aurora", far), map[Signal]float64{SignalPageView: 0.25}},
		{"follow", followEv("aurora", far), map[Signal]float64{SignalFollow: 4}},
		{"merch", merchEv("aurora", far, 2500), map[Signal]float64{SignalMerch: 5}},
		{"free merch", merchEv("aurora", far, 0), map[Signal]float64{}},
		{"donation on the list", donationEv("oxfam", far, 1000), map[Signal]float64{SignalDonation: 6}},
		{"donation off the list", donationEv("other", far, 1000), map[Signal]float64{}},
		{"attendance", attendanceEv("aurora", "show-1", far), map[Signal]float64{SignalAttendance: 7}},
		{"ticket purchase is not an F4 signal", ticketEv("aurora", far), map[Signal]float64{}},
		{"social graph is per fan", graphEv(500, far), map[Signal]float64{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st PairState
			delta, cs := apply(s, &st, c.ev, "aurora")
			if got := signalsOf(cs); !maps.Equal(got, c.want) {
				t.Fatalf("contributions %v, want %v", got, c.want)
			}
			var sum float64
			for _, got := range cs {
				sum += got.Points
				if got.EventID != "partner/"+c.ev.ID || !got.At.Equal(c.ev.Time) || got.Detail == "" && got.Signal != SignalPhotoTag && got.Signal != SignalFollow {
					t.Errorf("contribution %+v does not name event %s at %v", got, c.ev.ID, c.ev.Time)
				}
			}
			if !near(delta, sum) || !near(st.Value(p, c.ev.Time), sum) {
				t.Fatalf("delta %v, value %v, want %v", delta, st.Value(p, c.ev.Time), sum)
			}
		})
	}
}

func TestRecentBonusBoundaries(t *testing.T) {
	p := testProfile()
	s := newScorer(t, p)
	from := show.AddDate(0, -6, 0)
	cases := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"a second before six months", from.Add(-time.Second), false},
		{"exactly six months before", from, true},
		{"a day before the show", show.Add(-day), true},
		{"at the show", show, true},
		{"after the show", show.Add(time.Second), false},
	}
	for _, c := range cases {
		var st PairState
		_, cs := apply(s, &st, postEv("I love Aurora Lane", c.at), "aurora")
		if _, got := signalsOf(cs)[SignalAffinityRecent]; got != c.want {
			t.Errorf("%s: bonus %v, want %v (%v)", c.name, got, c.want, cs)
		}
	}

	// No show on sale: no bonus. RecentMonths is a profile setting.
	noShow := aurora
	noShow.ShowDate = time.Time{}
	s = newScorer(t, p, noShow)
	var st PairState
	if _, cs := apply(s, &st, postEv("I love Aurora Lane", show.Add(-day)), "aurora"); signalsOf(cs)[SignalAffinityRecent] != 0 {
		t.Errorf("bonus without a show date: %v", cs)
	}
	p.RecentMonths = 1
	s = newScorer(t, p)
	st = PairState{}
	if _, cs := apply(s, &st, postEv("I love Aurora Lane", show.AddDate(0, -2, 0)), "aurora"); signalsOf(cs)[SignalAffinityRecent] != 0 {
		t.Errorf("bonus two months before with recent_months 1: %v", cs)
	}
	// A negated statement never earns the bonus either.
	st = PairState{}
	if _, cs := apply(s, &st, postEv("I never liked Aurora Lane", show.Add(-day)), "aurora"); len(cs) != 0 {
		t.Errorf("negated statement before show: %v", cs)
	}
}

func streamPoints(t *testing.T, s *Scorer, st *PairState, at time.Time, minutes float64) float64 {
	t.Helper()
	_, cs := apply(s, st, listenEv("aurora", at, minutes), "aurora")
	return signalsOf(cs)[SignalStreaming]
}

func TestStreamingBinary(t *testing.T) {
	p := testProfile() // binary, 60 min per 7 days
	s := newScorer(t, p)
	// Periods are aligned to Epoch; start at one so the test is about thresholds.
	start := Epoch.Add(time.Duration(stamp(t0)/604800*604800) * time.Second)
	var st PairState
	steps := []struct {
		offset  time.Duration
		minutes float64
		want    float64
	}{
		{time.Hour, 30, 0},
		{2 * time.Hour, 29, 0},
		{3 * time.Hour, 1, 1}, // 60 minutes reached
		{4 * time.Hour, 120, 0},
		{6*day + 23*time.Hour, 300, 0}, // still the same period
		{7 * day, 59, 0},               // a new period starts from zero
		{7*day + time.Hour, 1, 1},
	}
	for i, step := range steps {
		if got := streamPoints(t, s, &st, start.Add(step.offset), step.minutes); got != step.want {
			t.Fatalf("step %d: %v points, want %v", i, got, step.want)
		}
	}
	if got := st.Value(p, start.Add(8*day)); got != 2 {
		t.Fatalf("value %v, want 2", got)
	}
}

func TestStreamingCountWithCap(t *testing.T) {
	p := testProfile()
	p.StreamMode = StreamCount
	p.StreamCap = 3
	p.Weights.Streaming = 2
	s := newScorer(t, p)
	start := Epoch.Add(time.Duration(stamp(t0)/604800*604800) * time.Second)
	var st PairState
	steps := []struct {
		minutes float64
		want    float64
	}{
		{50, 0},
		{20, 2},   // 70 minutes: the first threshold
		{100, 2},  // 170: the second
		{200, 2},  // 370 would be six; the cap is three
		{1000, 0}, // capped for the rest of the period
	}
	for i, step := range steps {
		got := streamPoints(t, s, &st, start.Add(time.Duration(i+1)*time.Hour), step.minutes)
		if got != step.want {
			t.Fatalf("step %d: %v points, want %v", i, got, step.want)
		}
	}
	if got := st.Value(p, start.Add(day)); got != 6 {
		t.Fatalf("value %v, want 3 points × 2", got)
	}
	// One long listen reaching two thresholds at once earns both in one contribution.
	st = PairState{}
	_, cs := apply(s, &st, listenEv("aurora", start.Add(day), 125), "aurora")
	if len(cs) != 1 || cs[0].Points != 4 {
		t.Fatalf("contributions %v, want one of 4 points", cs)
	}
}

// Listening in a period that has closed arrives too late to count; late
// listening within the current period counts.
func TestStreamingLateListen(t *testing.T) {
	p := testProfile()
	s := newScorer(t, p)
	start := Epoch.Add(time.Duration(stamp(t0)/604800*604800) * time.Second)
	var st PairState
	streamPoints(t, s, &st, start.Add(7*day+time.Hour), 30) // opens the next period
	if got := streamPoints(t, s, &st, start.Add(day), 120); got != 0 {
		t.Fatalf("closed period counted: %v", got)
	}
	if got := streamPoints(t, s, &st, start.Add(7*day), 30); got != 1 {
		t.Fatalf("late listen in the open period: %v points, want 1", got)
	}
}

func TestPromotedPostsScoreZero(t *testing.T) {
	p := testProfile()
	s := newScorer(t, p)
	for _, set := range []func(*events.SocialPost){
		func(sp *events.SocialPost) { sp.RewardCampaign = "summer-contest" },
		func(sp *events.SocialPost) { sp.InReplyToPromo = "promo-7" },
	} {
		e := postEv("I love Aurora Lane, best show ever", show.Add(-day))
		set(e.SocialPost)
		var st PairState
		if delta, cs := apply(s, &st, e, "aurora"); delta != 0 || len(cs) != 0 {
			t.Errorf("promoted post %+v scored %v: %v", e.SocialPost, delta, cs)
		}
		if got := s.Targets(nil, e); len(got) != 0 {
			t.Errorf("promoted post targets %v", got)
		}
		if !st.Zero() {
			t.Errorf("promoted post changed the state: %+v", st)
		}
	}
}

func TestPostsDiminishingReturns(t *testing.T) {
	p := testProfile()
	p.Weights.Post = 2
	p.PostCap = 3
	s := newScorer(t, p)
	var st PairState
	var total float64
	for n := 1; n <= 10; n++ {
		_, cs := apply(s, &st, postEv("Aurora Lane tonight!", t0.Add(time.Duration(n)*time.Minute)), "aurora")
		total += signalsOf(cs)[SignalPost]
		want := 2 * math.Min(3, math.Log2(1+float64(n)))
		if !near(total, want) {
			t.Fatalf("after %d posts: %v points, want %v", n, total, want)
		}
	}
	if !near(total, 6) {
		t.Fatalf("capped total %v, want 6", total)
	}
}

// With decay, posts spread over half-lives each count nearly afresh, while a
// burst has diminishing returns: more posts count more, a flood no more
// than the cap.
func TestPostsRateWithDecay(t *testing.T) {
	p := testProfile()
	p.HalfLife = 24 * time.Hour
	s := newScorer(t, p)
	var burst, spread PairState
	var burstPts, spreadPts float64
	for i := range 5 {
		_, cs := apply(s, &burst, postEv("Aurora Lane!", t0.Add(time.Duration(i)*time.Second)), "aurora")
		burstPts += signalsOf(cs)[SignalPost]
		_, cs = apply(s, &spread, postEv("Aurora Lane!", t0.Add(time.Duration(i)*20*day)), "aurora")
		spreadPts += signalsOf(cs)[SignalPost]
	}
	if !near(burstPts, math.Log2(6)) {
		t.Errorf("burst earned %v, want log2(6)", burstPts)
	}
	if spreadPts < 4.99 {
		t.Errorf("spread posts earned %v, want nearly 5", spreadPts)
	}
}

func TestDonationCharityList(t *testing.T) {
	p := testProfile()
	other := Performer{ID: "yara", Names: []string{"Yara Moon"}, Charities: []string{"shelter"}}
	s := newScorer(t, p, aurora, other)
	cases := []struct {
		charity string
		amount  int64
		targets []string
	}{
		{"oxfam", 500, []string{"aurora"}},
		{"shelter", 500, []string{"aurora", "yara"}},
		{"unlisted", 500, nil},
		{"oxfam", 0, nil},
	}
	for _, c := range cases {
		e := donationEv(c.charity, t0, c.amount)
		got := s.Targets(nil, e)
		if !slices.Equal(got, c.targets) {
			t.Errorf("%s %d: targets %v, want %v", c.charity, c.amount, got, c.targets)
		}
		for _, id := range []string{"aurora", "yara"} {
			var st PairState
			delta, _ := apply(s, &st, e, id)
			if want := slices.Contains(c.targets, id); (delta > 0) != want {
				t.Errorf("%s %d for %s: delta %v, want points %v", c.charity, c.amount, id, delta, want)
			}
		}
	}
}

func TestHumanPoint(t *testing.T) {
	p := testProfile()
	p.MinFriends = 25
	p.Weights.Human = 2
	s := newScorer(t, p)
	var st PairState
	apply(s, &st, photoEv("aurora", t0), "aurora")
	at := t0.Add(day)

	var fan FanState
	if got := s.Index(&st, &fan, "aurora", at); got != 1 {
		t.Fatalf("no graph: index %v, want 1", got)
	}
	if got := s.Index(&st, nil, "aurora", at); got != 1 {
		t.Fatalf("nil fan: index %v, want 1", got)
	}
	if _, changed := fan.Apply(graphEv(24, t0)); !changed {
		t.Fatal("first graph did not change the fan")
	}
	if got := s.Index(&st, &fan, "aurora", at); got != 1 {
		t.Fatalf("24 friends: index %v, want 1", got)
	}
	fact, _ := fan.Apply(graphEv(25, t0.Add(time.Hour)))
	if got := s.Index(&st, &fan, "aurora", at); got != 3 {
		t.Fatalf("25 friends: index %v, want 3", got)
	}
	if fact.FriendCount != 25 || !strings.HasPrefix(fact.EventID, "partner/") {
		t.Fatalf("fact %+v", fact)
	}
	// An older graph arriving late does not override the latest.
	if _, changed := fan.Apply(graphEv(3, t0.Add(time.Minute))); changed {
		t.Fatal("older graph changed the fan")
	}
	if n, ok := fan.FriendCount(); n != 25 || !ok {
		t.Fatalf("friend count %d %v", n, ok)
	}
	// A newer, smaller one removes the point: the latest graph is what counts.
	fan.Apply(graphEv(10, t0.Add(2*time.Hour)))
	if got := HumanPoints(p, &fan); got != 0 {
		t.Fatalf("10 friends: human points %v", got)
	}
	if _, changed := fan.Apply(photoEv("aurora", t0.Add(3*time.Hour))); changed {
		t.Fatal("non-graph event changed the fan")
	}
}

func TestDecayHalfLife(t *testing.T) {
	p := testProfile()
	p.HalfLife = 30 * day
	p.Weights.PhotoTag = 8
	s := newScorer(t, p)
	var st PairState
	apply(s, &st, photoEv("aurora", t0), "aurora")
	for i, want := range []float64{8, 4, 2, 1} {
		if got := st.Value(p, t0.Add(time.Duration(i)*30*day)); !near(got, want) {
			t.Errorf("after %d half-lives: %v, want %v", i, got, want)
		}
	}
	// Reading before the last event does not inflate the value.
	if got := st.Value(p, t0.Add(-30*day)); got != 8 {
		t.Errorf("value before the event: %v", got)
	}
	// Without a half-life nothing decays.
	p.HalfLife = 0
	if got := st.Value(p, t0.Add(3650*day)); got != 8 {
		t.Errorf("no decay: %v", got)
	}
}

// A mixed stream of events, the same states and values whether decay is
// read lazily or folded in by Recompute along the way.
func mixedEvents(start time.Time) []events.Event {
	var evs []events.Event
	for i := range 40 {
		at := start.Add(time.Duration(i) * 37 * time.Hour)
		switch i % 6 {
		case 0:
			evs = append(evs, listenEv("aurora", at, 65))
		case 1:
			evs = append(evs, postEv("I love Aurora Lane so much", at))
		case 2:
			evs = append(evs, photoEv("aurora", at))
		case 3:
			evs = append(evs, pageEv("aurora", at))
		case 4:
			evs = append(evs, merchEv("aurora", at, 1500))
		case 5:
			evs = append(evs, postEv("@AuroraLane see you at the show", at))
		}
	}
	return evs
}

func TestRecomputeEquivalentToLazyDecay(t *testing.T) {
	p := testProfile()
	p.HalfLife = 10 * day
	s := newScorer(t, p)
	var lazy, folded PairState
	evs := mixedEvents(t0)
	for i, e := range evs {
		apply(s, &lazy, e, "aurora")
		apply(s, &folded, e, "aurora")
		if i%5 == 0 {
			folded.Recompute(p, e.Time.Add(11*time.Hour)) // the scheduler runs between events
		}
	}
	end := evs[len(evs)-1].Time
	for _, at := range []time.Time{end, end.Add(day), end.Add(10 * day), end.Add(100 * day)} {
		want := lazy.Value(p, at)
		if got := folded.Value(p, at); !near(got, want) {
			t.Errorf("at %v: folded %v, lazy %v", at, got, want)
		}
		c := lazy
		c.Recompute(p, at)
		if got := c.Value(p, at); !near(got, want) {
			t.Errorf("at %v: after Recompute %v, lazy %v", at, got, want)
		}
		if !c.Updated().Equal(at) {
			t.Errorf("Updated %v, want %v", c.Updated(), at)
		}
	}
	// Recompute to the past changes nothing.
	c := lazy
	c.Recompute(p, t0)
	if c != lazy {
		t.Error("Recompute to an earlier time changed the state")
	}
}

// A late event adds its points decayed from its own time, so additive
// signals end at the same value in any order.
func TestLateEventsDecayFromTheirOwnTime(t *testing.T) {
	p := testProfile()
	p.HalfLife = 7 * day
	s := newScorer(t, p)
	evs := []events.Event{
		photoEv("aurora", t0),
		merchEv("aurora", t0.Add(3*day), 100),
		attendanceEv("aurora", "show-1", t0.Add(10*day)),
		postEv("I adore Aurora Lane", t0.Add(12*day)),
		followEv("aurora", t0.Add(20*day)),
	}
	var inOrder, reversed PairState
	for _, e := range evs {
		apply(s, &inOrder, e, "aurora")
	}
	for i := len(evs) - 1; i >= 0; i-- {
		delta, _ := apply(s, &reversed, evs[i], "aurora")
		if i == 0 {
			// The photo tag is 20 days late: worth 2^(-20/7) of a point now.
			if want := math.Exp2(-20.0 / 7); !near(delta, want) {
				t.Errorf("late delta %v, want %v", delta, want)
			}
		}
	}
	at := t0.Add(30 * day)
	if a, b := inOrder.Value(p, at), reversed.Value(p, at); !near(a, b) {
		t.Fatalf("in order %v, reversed %v", a, b)
	}
}

func TestOnceOnlySignals(t *testing.T) {
	p := testProfile()
	s := newScorer(t, p)
	var st PairState
	total := func(e events.Event) float64 { d, _ := apply(s, &st, e, "aurora"); return d }

	if total(followEv("aurora", t0)) != 1 || total(followEv("aurora", t0.Add(day))) != 0 {
		t.Error("follow counted more than once")
	}
	if total(attendanceEv("aurora", "show-1", t0)) != 1 || total(attendanceEv("aurora", "show-1", t0.Add(time.Minute))) != 0 {
		t.Error("the same show counted twice")
	}
	if total(attendanceEv("aurora", "show-2", t0.Add(day))) != 1 {
		t.Error("a second show did not count")
	}
	d := t0.Truncate(day)
	if total(pageEv("aurora", d.Add(time.Hour))) != 1 || total(pageEv("aurora", d.Add(23*time.Hour))) != 0 {
		t.Error("two visits on one day counted twice")
	}
	if total(pageEv("aurora", d.Add(25*time.Hour))) != 1 {
		t.Error("a visit the next day did not count")
	}
	if total(photoEv("aurora", t0)) != 1 || total(photoEv("aurora", t0)) != 1 {
		t.Error("each photo tag counts")
	}
}

func TestTargets(t *testing.T) {
	p := testProfile()
	yara := Performer{ID: "yara", Names: []string{"Yara Moon"}}
	s := newScorer(t, p, aurora, yara)
	cases := []struct {
		name string
		ev   events.Event
		want []string
	}{
		{"listen", listenEv("aurora", t0, 1), []string{"aurora"}},
		{"listen to an unknown performer", listenEv("nobody", t0, 1), nil},
		{"page view", pageEv("yara", t0), []string{"yara"}},
		{"photo", photoEv("aurora", t0), []string{"aurora"}},
		{"follow", followEv("aurora", t0), []string{"aurora"}},
		{"merch", merchEv("aurora", t0, 10), []string{"aurora"}},
		{"attendance", attendanceEv("yara", "s", t0), []string{"yara"}},
		{"post naming both", postEv("Yara Moon opens for @AuroraLane", t0), []string{"yara", "aurora"}},
		{"post naming none", postEv("hello", t0), nil},
		{"donation", donationEv("oxfam", t0, 1), []string{"aurora"}},
		{"ticket", ticketEv("aurora", t0), nil},
		{"graph", graphEv(10, t0), nil},
	}
	for _, c := range cases {
		if got := s.Targets(nil, c.ev); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestApplyIgnoresOtherPerformers(t *testing.T) {
	p := testProfile()
	yara := Performer{ID: "yara", Names: []string{"Yara Moon"}}
	s := newScorer(t, p, aurora, yara)
	var st PairState
	if d, cs := apply(s, &st, photoEv("aurora", t0), "yara"); d != 0 || cs != nil {
		t.Errorf("aurora's photo scored for yara: %v %v", d, cs)
	}
	if d, _ := apply(s, &st, postEv("I love Aurora Lane", t0), "yara"); d != 0 {
		t.Errorf("post about aurora scored for yara: %v", d)
	}
	if d, _ := apply(s, &st, photoEv("aurora", t0), "nobody"); d != 0 {
		t.Errorf("unknown performer scored: %v", d)
	}
	if _, ok := s.Profile("nobody"); ok {
		t.Error("profile for an unknown performer")
	}
	if got, ok := s.Performer("yara"); !ok || got.ID != "yara" {
		t.Errorf("Performer(yara) = %+v %v", got, ok)
	}
	// Apply appends to dst.
	dst := []Contribution{{Signal: SignalFollow}}
	_, dst = s.Apply(dst, &st, photoEv("aurora", t0), "aurora")
	if len(dst) != 2 || dst[0].Signal != SignalFollow || dst[1].Signal != SignalPhotoTag {
		t.Errorf("dst %v", dst)
	}
}

func TestExplainMatchesIndex(t *testing.T) {
	p := testProfile()
	p.HalfLife = 20 * day
	p.Weights.Human = 3
	s := newScorer(t, p)
	var st PairState
	var fan FanState
	var contribs []Contribution
	evs := mixedEvents(t0)
	// Deliver one event late, to show explanations decay it the same way.
	evs[3], evs[10] = evs[10], evs[3]
	for _, e := range evs {
		_, contribs = s.Apply(contribs, &st, e, "aurora")
	}
	fact, _ := fan.Apply(graphEv(100, t0))
	at := evs[len(evs)-1].Time.Add(5 * day)

	ex := Explain(p, contribs, &fact, at)
	if want := s.Index(&st, &fan, "aurora", at); !near(ex.Total, want) {
		t.Fatalf("explained total %v, index %v", ex.Total, want)
	}
	var order []Signal
	var sum float64
	for _, line := range ex.Signals {
		order = append(order, line.Signal)
		sum += line.Points
		if line.Points > line.Earned+1e-9 || line.Count == 0 {
			t.Errorf("line %+v", line)
		}
	}
	want := []Signal{SignalAffinity, SignalAffinityRecent, SignalStreaming, SignalPhotoTag, SignalPageView, SignalMerch, SignalPost, SignalHuman}
	if !slices.Equal(order, want) {
		t.Errorf("signals %v, want %v", order, want)
	}
	if !near(sum, ex.Total) {
		t.Errorf("lines sum to %v, total %v", sum, ex.Total)
	}
	if len(ex.Items) != len(contribs)+1 {
		t.Fatalf("%d items for %d contributions and a human point", len(ex.Items), len(contribs))
	}
	for i := 1; i < len(ex.Items); i++ {
		if ex.Items[i].At.After(ex.Items[i-1].At) {
			t.Fatalf("items not newest first at %d", i)
		}
	}
	for _, it := range ex.Items {
		if it.EventID == "" || it.Value <= 0 || it.Value > it.Points {
			t.Errorf("item %+v", it)
		}
	}
	// Below the friend threshold, no human line.
	fact.FriendCount = 1
	if ex := Explain(p, contribs, &fact, at); ex.Signals[len(ex.Signals)-1].Signal == SignalHuman {
		t.Error("human line for 1 friend")
	}
}

func TestStateBinaryRoundTrip(t *testing.T) {
	p := testProfile()
	p.HalfLife = 5 * day
	s := newScorer(t, p)
	var st PairState
	for _, e := range mixedEvents(t0) {
		apply(s, &st, e, "aurora")
	}
	apply(s, &st, followEv("aurora", t0.Add(90*day)), "aurora")
	apply(s, &st, attendanceEv("aurora", "s1", t0.Add(90*day)), "aurora")
	b, err := st.MarshalBinary()
	if err != nil || len(b) > MaxPairStateSize || len(b) >= pairStateSize {
		t.Fatalf("marshal: %d bytes, %v", len(b), err)
	}
	var back PairState
	if err := back.UnmarshalBinary(b); err != nil || back != st {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, st)
	}
	for name, bad := range map[string][]byte{
		"short":          b[:len(b)-1],
		"trailing bytes": append(append([]byte(nil), b...), 0),
		"no fields":      b[:2],
		"zero field":     {compactStateVersion, hasStreamed, 0, 0},
		"long uvarint":   {compactStateVersion, hasRef, 0, 0x81, 0x00},
		"version":        append([]byte{9}, b[1:]...),
		"NaN":            {compactStateVersion, hasPosts, 0, 0, 0, 0xc0, 0x7f},
	} {
		if err := back.UnmarshalBinary(bad); err == nil {
			t.Errorf("%s: accepted %x", name, bad)
		}
	}
	// Logs written before the compact form hold the fixed one.
	if err := back.UnmarshalBinary(fixedPairState(st)); err != nil || back != st {
		t.Fatalf("fixed form: %+v, %v; want %+v", back, err, st)
	}
	if full := (PairState{ref: math.MaxUint32, score: 1, posts: 2, period: math.MaxUint32, listened: math.MaxUint32, show: 7,
		visitDay: math.MaxUint16, streamed: 255, flags: 255}); len(must(full.AppendBinary(nil))) != MaxPairStateSize {
		t.Errorf("every field at its longest takes %d bytes, MaxPairStateSize is %d", len(must(full.AppendBinary(nil))), MaxPairStateSize)
	}

	var fan FanState
	fan.Apply(graphEv(1<<40, t0)) // clamps
	fb, _ := fan.MarshalBinary()
	var fback FanState
	if err := fback.UnmarshalBinary(fb); err != nil || fback != fan {
		t.Fatalf("fan round trip: %+v %v", fback, err)
	}
	if n, _ := fback.FriendCount(); n != math.MaxUint32 {
		t.Fatalf("friend count %d, want clamped", n)
	}
	fb[9] = 7
	if err := fback.UnmarshalBinary(fb); err == nil {
		t.Fatal("bad flag accepted")
	}
}

func TestStampClamps(t *testing.T) {
	if stamp(Epoch.Add(-time.Hour)) != 0 || stamp(Epoch.AddDate(200, 0, 0)) != math.MaxUint32 {
		t.Fatal("stamp does not clamp")
	}
	if got := unstamp(stamp(t0)); !got.Equal(t0) {
		t.Fatalf("unstamp(stamp(t0)) = %v", got)
	}
}

func TestInterner(t *testing.T) {
	var in Interner
	a, b := in.Intern("aurora"), in.Intern("yara")
	if a == b || in.Intern("aurora") != a || in.ID(b) != "yara" || in.ID(99) != "" {
		t.Fatal("interner")
	}
	if _, ok := in.Lookup("nobody"); ok {
		t.Fatal("lookup of an unknown id")
	}
}

// One Scorer serves every partition; each goroutine owns its own states.
// Run with -race.
func TestScorerConcurrentUse(t *testing.T) {
	s := newScorer(t, testProfile())
	evs := mixedEvents(t0)
	var wg sync.WaitGroup
	results := make([]float64, 4)
	for g := range results {
		wg.Go(func() {
			var st PairState
			for _, e := range evs {
				for _, id := range s.Targets(nil, e) {
					s.Apply(nil, &st, e, id)
				}
			}
			results[g] = st.Value(testProfile(), t0.Add(100*day))
		})
	}
	wg.Wait()
	for _, r := range results[1:] {
		if r != results[0] || r == 0 {
			t.Fatalf("results differ: %v", results)
		}
	}
}

// fixedPairState writes the version 1 form, which only older logs hold.
func fixedPairState(st PairState) []byte {
	le := binary.LittleEndian
	b := []byte{stateVersion}
	for _, v := range []uint32{st.ref, math.Float32bits(st.score), math.Float32bits(st.posts), st.period, st.listened, st.show} {
		b = le.AppendUint32(b, v)
	}
	b = le.AppendUint16(b, st.visitDay)
	return append(b, st.streamed, st.flags)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzPairStateUnmarshal holds the compact form to one encoding per state:
// whatever decodes re-encodes to the same bytes.
func FuzzPairStateUnmarshal(f *testing.F) {
	f.Add([]byte{compactStateVersion, hasRef | hasScore, 1, 0x80, 0x01, 0, 0, 0x80, 0x3f})
	f.Add(fixedPairState(PairState{ref: 5, score: 2, flags: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st PairState
		if st.UnmarshalBinary(b) != nil {
			return
		}
		again := must(st.AppendBinary(nil))
		if b[0] == compactStateVersion && string(again) != string(b) {
			t.Fatalf("decoded %x, re-encoded %x", b, again)
		}
		var back PairState
		if err := back.UnmarshalBinary(again); err != nil || back != st {
			t.Fatalf("re-encoded state does not decode back: %+v vs %+v, %v", back, st, err)
		}
	})
}

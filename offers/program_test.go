package offers

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var (
	showAt  = time.Date(2027, 3, 1, 20, 0, 0, 0, time.UTC)
	london  = Show{ID: "s", StartsAt: showAt, VenueLat: 51.54, VenueLon: -0.15}
	evening = time.Date(2026, 11, 20, 19, 0, 0, 0, time.UTC)
)

func compile(t testing.TB, r Rule) *Program {
	t.Helper()
	p, err := Compile(r, london)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type held map[Key]time.Time

func (h held) at(k Key) (time.Time, bool) { at, ok := h[k]; return at, ok }

func (h held) take(offers []Offer) {
	for _, o := range offers {
		h[o.Key()] = o.IssuedAt
	}
}

func crossing(fan uuid.UUID, index float64, now time.Time) Crossing {
	return Crossing{Fan: Fan{ID: fan, FriendCount: 200}, Index: index, SessionLive: true, SessionStart: now.Add(-10 * time.Minute),
		EventID: "streamly/e1", EventType: "listen", EventTime: now, Now: now}
}

func reasons(ds []Decision) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%d:%s", d.Tier, d.Reason))
	}
	return strings.Join(s, ",")
}

func TestEvaluateIssuesOncePerTierAndOnlyInSession(t *testing.T) {
	p := compile(t, testRule())
	fan := uuid.New()
	h := held{}
	c := crossing(fan, 100, evening)
	c.SessionLive = false
	if got, ds := p.Evaluate(&c, h.at, uuid.New); len(got) != 0 || reasons(ds) != "1:no_live_session,2:no_live_session" {
		t.Fatalf("outside a live session: %v %s", got, reasons(ds))
	}
	if got, ds := p.Evaluate(ptr(crossing(fan, 19.9, evening)), h.at, uuid.New); len(got) != 0 || len(ds) != 0 {
		t.Fatalf("below threshold: %v %v", got, ds)
	}
	got, _ := p.Evaluate(ptr(crossing(fan, 25, evening)), h.at, uuid.New)
	if len(got) != 1 || got[0].Tier != 1 || got[0].RuleVersion != 3 || got[0].EventID != "streamly/e1" ||
		!got[0].ExpiresAt.Equal(evening.Add(time.Hour)) || got[0].Perks[0] != "presale" {
		t.Fatalf("first crossing: %+v", got)
	}
	h.take(got)
	if again, ds := p.Evaluate(ptr(crossing(fan, 30, evening)), h.at, uuid.New); len(again) != 0 || len(ds) != 0 {
		t.Fatalf("second offer for the same tier: %v %v", again, ds)
	}
	up, _ := p.Evaluate(ptr(crossing(fan, 61, evening)), h.at, uuid.New)
	if len(up) != 1 || up[0].Tier != 2 {
		t.Fatalf("rise to tier 2: %+v", up)
	}
}

func TestEvaluateGates(t *testing.T) {
	fan := uuid.New()
	base := testRule()
	cases := []struct {
		name   string
		edit   func(*Rule)
		cross  func(*Crossing)
		offers int
		want   string
	}{
		{"plain", func(*Rule) {}, func(*Crossing) {}, 1, ""},
		{"too good to be human", func(r *Rule) { r.UpperThreshold = 80 }, func(c *Crossing) { c.Index = 90 }, 0, "1:too_good_to_be_human,2:too_good_to_be_human"},
		{"after the on-sale window", func(*Rule) {}, func(c *Crossing) { c.Now = showAt }, 0, "1:after_window"},
		{"before the rule's window", func(r *Rule) { r.IssueFrom = evening.Add(time.Hour) }, func(*Crossing) {}, 0, "1:before_window"},
		{"home unknown", func(r *Rule) { r.MaxDistanceKm = 100 }, func(*Crossing) {}, 0, "1:home_location_unknown"},
		{"too far: Manchester is 260 km", func(r *Rule) { r.MaxDistanceKm = 100 },
			func(c *Crossing) { c.Fan.HasHome, c.Fan.HomeLat, c.Fan.HomeLon = true, 53.48, -2.24 }, 0, "1:too_far_from_venue"},
		{"near: Brighton is 75 km", func(r *Rule) { r.MaxDistanceKm = 100 },
			func(c *Crossing) { c.Fan.HasHome, c.Fan.HomeLat, c.Fan.HomeLon = true, 50.82, -0.14 }, 1, ""},
		{"condition true", func(r *Rule) {
			r.Condition = `fan.friend_count >= 50 && session.minutes > 5.0 && event.type == "listen"`
		}, func(*Crossing) {}, 1, ""},
		{"condition false", func(r *Rule) { r.Condition = `fan.friend_count >= 500` }, func(*Crossing) {}, 0, "1:condition_false"},
		{"condition on the tier", func(r *Rule) { r.Condition = `index.tier == 2` }, func(c *Crossing) { c.Index = 70 }, 1, "1:condition_false"},
		{"condition error", func(r *Rule) { r.Condition = `fan.no_such_field > 1` }, func(*Crossing) {}, 0, "1:condition_error"},
		{"quiet hours skip in the fan's zone", func(r *Rule) { r.QuietHours = &QuietHours{Start: "22:00", End: "08:00", Mode: QuietSkip} },
			func(c *Crossing) { c.Fan.TimeZone, _ = time.LoadLocation("Asia/Tokyo") }, 0, "1:quiet_hours"}, // 04:00 in Tokyo
		{"quiet hours elsewhere", func(r *Rule) { r.QuietHours = &QuietHours{Start: "22:00", End: "08:00", Mode: QuietSkip} },
			func(*Crossing) {}, 1, ""}, // 19:00 in UTC
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.edit(&r)
			p := compile(t, r)
			c := crossing(fan, 25, evening)
			tc.cross(&c)
			got, ds := p.Evaluate(&c, held{}.at, uuid.New)
			if len(got) != tc.offers || reasons(ds) != tc.want {
				t.Fatalf("%d offers, decisions %q; want %d and %q", len(got), reasons(ds), tc.offers, tc.want)
			}
		})
	}
}

func TestQuietHoursHoldDeliversAtTheirEnd(t *testing.T) {
	r := testRule()
	r.QuietHours = &QuietHours{Start: "22:00", End: "08:00", Mode: QuietHold}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	c := crossing(uuid.New(), 25, evening) // 04:00 on the 21st in Tokyo
	c.Fan.TimeZone = tokyo
	got, ds := compile(t, r).Evaluate(&c, held{}.at, uuid.New)
	if len(got) != 1 || len(ds) != 0 || !got[0].DeliverAfter.Equal(time.Date(2026, 11, 21, 8, 0, 0, 0, tokyo)) {
		t.Fatalf("held offer: %+v %v", got, ds)
	}
}

func TestCapAndCooldown(t *testing.T) {
	r := testRule()
	r.Tiers = append(r.Tiers, Tier{Threshold: 90, Perks: []string{"backstage"}})
	r.PerFanCap, r.Cooldown = 2, time.Hour
	p := compile(t, r)
	fan := uuid.New()
	h := held{}
	got, _ := p.Evaluate(ptr(crossing(fan, 25, evening)), h.at, uuid.New)
	h.take(got)
	if got, ds := p.Evaluate(ptr(crossing(fan, 70, evening.Add(30*time.Minute))), h.at, uuid.New); len(got) != 0 || reasons(ds) != "2:cooldown" {
		t.Fatalf("inside the cooldown: %v %s", got, reasons(ds))
	}
	got, _ = p.Evaluate(ptr(crossing(fan, 70, evening.Add(2*time.Hour))), h.at, uuid.New)
	if len(got) != 1 {
		t.Fatalf("after the cooldown: %v", got)
	}
	h.take(got)
	if got, ds := p.Evaluate(ptr(crossing(fan, 95, evening.Add(5*time.Hour))), h.at, uuid.New); len(got) != 0 || reasons(ds) != "3:per_fan_cap" {
		t.Fatalf("over the cap: %v %s", got, reasons(ds))
	}
}

func TestHoldoutIsAStableShare(t *testing.T) {
	r := testRule()
	r.Holdout = 0.2
	p := compile(t, r)
	out := 0
	const n = 20_000
	for i := range n {
		fan := uuid.NewSHA1(uuid.Nil, []byte{byte(i), byte(i >> 8), byte(i >> 16)})
		got, ds := p.Evaluate(ptr(crossing(fan, 25, evening)), held{}.at, uuid.New)
		if len(ds) == 1 && ds[0].Reason == ReasonHoldout {
			out++
			if len(got) != 0 {
				t.Fatal("held-out fan got an offer")
			}
			if _, again := p.Evaluate(ptr(crossing(fan, 25, evening)), held{}.at, uuid.New); len(again) != 1 {
				t.Fatal("holdout is not stable for a fan")
			}
		}
	}
	if share := float64(out) / n; share < 0.18 || share > 0.22 {
		t.Fatalf("held out %.3f of fans, want about 0.2", share)
	}
}

func TestCompileListsEveryProblemWithPositions(t *testing.T) {
	r := testRule()
	r.Tiers[1].Perks = []string{"discount:150%", "section", "yacht"}
	r.Condition = "fan.friend_count >\n  && nope("
	r.QuietHours = &QuietHours{Start: "25:00", End: "08:00", Mode: "maybe"}
	r.Holdout = 0.9
	_, err := Compile(r, london)
	if err == nil {
		t.Fatal("invalid rule compiled")
	}
	for _, want := range []string{"tiers[1].perks[0]: discount", "tiers[1].perks[1]: section needs a value", `tiers[1].perks[2]: unknown perk "yacht"`,
		"condition: 2:", "quiet_hours.start", "quiet_hours.mode", "holdout:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	r = testRule()
	r.Condition = `index.value + 1`
	if _, err := Compile(r, london); err == nil || !strings.Contains(err.Error(), "must be true or false") {
		t.Fatalf("non-boolean condition: %v", err)
	}
}

func TestRuleJSONRoundTrip(t *testing.T) {
	r := testRule()
	r.Cooldown, r.QuietHours, r.IssueUntil = 2*time.Hour, &QuietHours{Start: "22:00", End: "07:30", Mode: QuietHold}, showAt
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"lifetime":"1h0m0s"`) || !strings.Contains(string(b), `"cooldown":"2h0m0s"`) {
		t.Fatalf("durations not written as text: %s", b)
	}
	var back Rule
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if back.Lifetime != r.Lifetime || back.Cooldown != r.Cooldown || !back.IssueUntil.Equal(r.IssueUntil) || *back.QuietHours != *r.QuietHours {
		t.Fatalf("round trip: %+v", back)
	}
	if err := back.UnmarshalJSON([]byte(`{"lifetime":"two days"}`)); err == nil || !strings.Contains(err.Error(), "lifetime:") {
		t.Fatalf("bad duration: %v", err)
	}
}

// BenchmarkEvaluateCrossing measures what a threshold crossing costs with
// 1,000 active rules: 10 per performer over 100 performers, each with a CEL
// condition, as the rule set hands a crossing only its performer's rules.
func BenchmarkEvaluateCrossing(b *testing.B) {
	byPerformer := map[string][]*Program{}
	for i := range 1000 {
		r := testRule()
		r.ID, r.PerformerID = fmt.Sprintf("rule-%04d", i), fmt.Sprintf("perf-%03d", i%100)
		r.Condition = `fan.friend_count >= 50 && session.minutes > 5.0 && show.days_until < 120.0`
		r.MaxDistanceKm, r.QuietHours = 500, &QuietHours{Start: "23:00", End: "07:00", Mode: QuietHold}
		byPerformer[r.PerformerID] = append(byPerformer[r.PerformerID], compile(b, r))
	}
	rules := byPerformer["perf-042"]
	h := held{}
	var seq uint64
	newID := func() uuid.UUID { // cheap ids: uuid.New reads the OS's randomness, which is not what this measures
		seq++
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[8:], seq)
		return id
	}
	fan := uuid.New()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		// A fresh crossing each time, as the pipeline makes one per index
		// change: the index has just reached tier 1 of each rule.
		c := crossing(fan, 25, evening)
		c.Fan.HasHome, c.Fan.HomeLat, c.Fan.HomeLon = true, 51.5, -0.1
		for _, p := range rules {
			p.Evaluate(&c, h.at, newID)
		}
	}
	b.ReportMetric(float64(len(rules)), "rules/crossing")
}

func ptr(c Crossing) *Crossing { return &c }

// The pipeline hands one crossing to the rules of each pair an event
// touches, changing only the index: what conditions read must follow it.
func TestACrossingReusedForAnotherIndex(t *testing.T) {
	r := testRule()
	r.Condition = `index.value >= 30.0`
	p := compile(t, r)
	c := crossing(uuid.New(), 25, evening)
	if got, ds := p.Evaluate(&c, held{}.at, uuid.New); len(got) != 0 || reasons(ds) != "1:condition_false" {
		t.Fatalf("index 25: %v %s", got, reasons(ds))
	}
	c.Index = 35
	if got, _ := p.Evaluate(&c, held{}.at, uuid.New); len(got) != 1 {
		t.Fatalf("index 35 on the same crossing: %v", got)
	}
}

// Reaches is what lets the consumer skip describing a crossing: wherever it
// says no, Evaluate grants and decides nothing, even for a crossing every gate
// would refuse; wherever it says yes, Evaluate has something to say.
func TestReachesAgreesWithEvaluate(t *testing.T) {
	p := compile(t, testRule())
	first := p.Rule.Tiers[0].Threshold
	for _, index := range []float64{0, first - 0.1, first, first + 0.1, 100} {
		c := crossing(uuid.New(), index, evening)
		c.SessionLive = false // refused in every tier reached: a decision, not silence
		got, ds := p.Evaluate(&c, held{}.at, uuid.New)
		said := len(got) > 0 || len(ds) > 0
		if p.Reaches(index) != said {
			t.Errorf("index %v: Reaches %v, but Evaluate gave %d offers and %d decisions", index, p.Reaches(index), len(got), len(ds))
		}
	}
	if (&Program{}).Reaches(100) {
		t.Error("a rule without tiers reaches nothing")
	}
}

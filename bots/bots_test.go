package bots_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/bots"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestImpossibleTravel(t *testing.T) {
	th := bots.DefaultThresholds()
	var s bots.State
	now := t0.Add(48 * time.Hour)
	// London, then Paris (344 km) two hours later: possible.
	if err := s.ObservePurchase("p/1", t0, 51.51, -0.13, now, th); err != nil {
		t.Fatal(err)
	}
	if err := s.ObservePurchase("p/2", t0.Add(2*time.Hour), 48.86, 2.35, now, th); err != nil {
		t.Fatal(err)
	}
	if got := s.Summary().Impossible; got != 0 {
		t.Fatalf("London→Paris in 2 h: %d impossible hops, want 0", got)
	}
	// Paris, then Tokyo (9700 km) an hour later: no aeroplane does that.
	if err := s.ObservePurchase("p/3", t0.Add(3*time.Hour), 35.68, 139.69, now, th); err != nil {
		t.Fatal(err)
	}
	sum := s.Summary()
	if sum.Impossible != 1 || sum.FastestKmh < 9000 {
		t.Fatalf("Paris→Tokyo in 1 h: %+v, want one hop near 9700 km/h", sum)
	}
}

func TestPurchaseRate(t *testing.T) {
	th := bots.DefaultThresholds() // 6 per 24 h
	var s bots.State
	now := t0.Add(1000 * time.Hour)
	for i := range 6 {
		if err := s.ObservePurchase(fmt.Sprint("p/", i), t0.Add(time.Duration(i)*time.Hour), 51.5, -0.1, now, th); err != nil {
			t.Fatal(err)
		}
	}
	if c := bots.Classify(bots.Evidence{Live: s.Summary()}, th); c.Class != bots.Human {
		t.Fatalf("6 purchases in a day: %+v, want human", c)
	}
	if err := s.ObservePurchase("p/6", t0.Add(7*time.Hour), 51.5, -0.1, now, th); err != nil {
		t.Fatal(err)
	}
	c := bots.Classify(bots.Evidence{Live: s.Summary()}, th)
	if len(c.Reasons) != 1 || c.Reasons[0].Signal != bots.SignalPurchaseRate {
		t.Fatalf("7 purchases in a day: %+v, want the purchase-rate reason", c)
	}
	// A purchase two days later starts a new window; the peak stays.
	if err := s.ObservePurchase("p/7", t0.Add(50*time.Hour), 51.5, -0.1, now, th); err != nil {
		t.Fatal(err)
	}
	if got := s.Summary().PeakPurchases; got != 7 {
		t.Fatalf("peak = %d, want 7", got)
	}
}

// TestBadPurchasesLeaveStateAlone checks that out-of-range coordinates,
// impossible times and duplicates are refused with their code and change nothing.
func TestBadPurchasesLeaveStateAlone(t *testing.T) {
	th := bots.DefaultThresholds()
	var s bots.State
	now := t0.Add(time.Hour)
	if err := s.ObservePurchase("p/1", t0, 51.5, -0.1, now, th); err != nil {
		t.Fatal(err)
	}
	before, _ := s.MarshalBinary()
	cases := []struct {
		id       string
		at       time.Time
		lat, lon float64
		code     string
	}{
		{"p/2", t0, 91, 0, bots.RejectCoordinates},
		{"p/3", t0, 0, -180.5, bots.RejectCoordinates},
		{"p/4", now.Add(time.Hour), 35.68, 139.69, bots.RejectImpossibleAt},
		{"p/5", time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), 35.68, 139.69, bots.RejectImpossibleAt},
		{"p/1", t0.Add(time.Minute), 35.68, 139.69, bots.RejectDuplicate},
	}
	for _, c := range cases {
		err := s.ObservePurchase(c.id, c.at, c.lat, c.lon, now, th)
		var rej *bots.Rejected
		if !errors.As(err, &rej) || rej.Code != c.code {
			t.Errorf("%s at %s (%g,%g): %v, want %s", c.id, c.at, c.lat, c.lon, err, c.code)
		}
	}
	after, _ := s.MarshalBinary()
	if string(before) != string(after) {
		t.Fatal("a refused purchase changed the state")
	}
}

func TestStateRoundTrip(t *testing.T) {
	th := bots.DefaultThresholds()
	var s bots.State
	now := t0.Add(time.Hour)
	_ = s.ObservePurchase("p/1", t0, 51.5, -0.1, now, th)
	_ = s.ObservePurchase("p/2", t0.Add(time.Minute), 35.68, 139.69, now, th)
	s.ObserveTooGood()
	b, err := s.MarshalBinary()
	if err != nil || len(b) != 48 {
		t.Fatalf("encoded %d bytes, %v; want 48", len(b), err)
	}
	var back bots.State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Fatalf("round trip: %+v, want %+v", back, s)
	}
	if err := back.ObservePurchase("p/2", t0.Add(2*time.Minute), 0, 0, now, th); err == nil {
		t.Fatal("a duplicate was accepted after decoding: the recent ids were lost")
	}
	if err := back.UnmarshalBinary(b[:40]); err == nil {
		t.Fatal("a short encoding decoded")
	}
}

// TestDeclaredAgentSpeedIsNotEvidence: reactions made by a declared agent
// never count, while the same speed from the fan's own account does.
func TestDeclaredAgentSpeedIsNotEvidence(t *testing.T) {
	th := bots.DefaultThresholds()
	fast := []bots.Reaction{{Ms: 200}, {Ms: 250}, {Ms: 300}, {Ms: 400}}
	agent := make([]bots.Reaction, len(fast))
	for i, r := range fast {
		agent[i] = bots.Reaction{Ms: r.Ms, ByAgent: true}
	}
	friends := bots.Evidence{FriendCount: 200, FriendsKnown: true}
	e := friends
	e.Reactions = bots.SummarizeReactions(agent, th)
	e.DeclaredAgent = true
	if c := bots.Classify(e, th); c.Class != bots.Human || !c.Agent {
		t.Fatalf("fan with a fast declared agent: %+v, want human with declared_agent", c)
	}
	e = friends
	e.Reactions = bots.SummarizeReactions(fast, th)
	c := bots.Classify(e, th)
	if c.Class != bots.Automated || c.Reasons[0].Signal != bots.SignalFastReactions {
		t.Fatalf("undeclared fast account: %+v, want automated for fast reactions", c)
	}
	// One quick tap among slow ones is a quick person, not a program.
	e.Reactions = bots.SummarizeReactions([]bots.Reaction{{Ms: 300}, {Ms: 30000}, {Ms: 45000}, {Ms: 9000}}, th)
	if c := bots.Classify(e, th); c.Class != bots.Human {
		t.Fatalf("one fast reaction of four: %+v, want human", c)
	}
}

func TestDetectRings(t *testing.T) {
	var ties []bots.Tie
	// A loose friend circle of 40 people, each with a few ties out.
	for i := range 40 {
		ties = append(ties, bots.Tie{A: fmt.Sprint("h", i), B: fmt.Sprint("h", (i+1)%40), Weight: 2})
		ties = append(ties, bots.Tie{A: fmt.Sprint("h", i), B: fmt.Sprint("h", (i+7)%40), Weight: 1})
		ties = append(ties, bots.Tie{A: fmt.Sprint("h", i), B: fmt.Sprint("out", i), Weight: 1})
	}
	// A ring of 8 that all befriend each other, and one tie to a person.
	for i := range 8 {
		for j := i + 1; j < 8; j++ {
			ties = append(ties, bots.Tie{A: fmt.Sprint("r", i), B: fmt.Sprint("r", j), Weight: 5})
		}
	}
	ties = append(ties, bots.Tie{A: "r0", B: "h3", Weight: 1})
	rings := bots.DetectRings(ties, bots.DefaultThresholds(), 7)
	for i := range 8 {
		if ev, ok := rings[fmt.Sprint("r", i)]; !ok || ev.Size != 8 {
			t.Errorf("r%d: %+v %v, want a ring of 8", i, ev, ok)
		}
	}
	for id := range rings {
		if id[0] != 'r' {
			t.Errorf("%s was put in a ring", id)
		}
	}
}

func TestThresholdsValidate(t *testing.T) {
	if err := bots.DefaultThresholds().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := bots.DefaultThresholds()
	bad.RingInsideShare, bad.MaxSpeedKmh, bad.SuspectPoints = 2, -1, 9
	if err := bad.Validate(); err == nil {
		t.Fatal("out-of-range thresholds validated")
	}
}

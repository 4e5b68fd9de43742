package pipeline

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/offers"
)

func purchaseAt(id, user string, at time.Time, lat, lon float64) events.Event {
	return events.Event{ID: id, Source: "p", Subject: user, Type: events.TypeTicketPurchase, Time: at,
		TicketPurchase: &events.TicketPurchase{Event: "show", Performer: "perf", Venue: events.Venue{Lat: lat, Lon: lon}, Quantity: 1}}
}

// TestAutomatedAccountGetsNoOffer drives a fan with few friends who buys in
// London and Tokyo an hour apart: the live signals classify it automated,
// the class reaches the delta with its reasons, and its crossing issues no
// offer but a decision with the reason.
func TestAutomatedAccountGetsNoOffer(t *testing.T) {
	fan := uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	r := offers.Rule{ID: "r", Version: 1, PerformerID: "perf", ShowID: "s", Lifetime: time.Hour,
		Tiers: []offers.Tier{{Threshold: 10, Perks: []string{"presale"}}}, Channels: []offers.Channel{offers.ChannelSMS}}
	p, err := New(Config{Directory: dir{"u": fan}, Rules: compiled(t, r), Scorers: newScorers(t), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(events.Event{ID: "g", Source: "p", Subject: "u", Type: events.TypeSocialGraph, Time: now.Add(-3 * time.Hour),
		SocialGraph: &events.SocialGraph{FriendCount: 3}}); err != nil {
		t.Fatal(err)
	}
	for i, c := range [][2]float64{{51.51, -0.13}, {35.68, 139.69}} {
		if _, err := p.Apply(purchaseAt(string(rune('a'+i)), "u", now.Add(time.Duration(i-2)*time.Hour), c[0], c[1])); err != nil {
			t.Fatal(err)
		}
	}
	res, err := p.Apply(listenAt("u", now, 11))
	if err != nil || len(res.Offers) != 0 {
		t.Fatalf("automated account crossing: offers %+v, %v", res.Offers, err)
	}
	d := p.Flush()
	if len(d.Classified) != 1 || d.Classified[0].Class != bots.Automated {
		t.Fatalf("classified: %+v, want the fan automated", d.Classified)
	}
	got := map[bots.Signal]bool{}
	for _, r := range d.Classified[0].Reasons {
		got[r.Signal] = true
	}
	if !got[bots.SignalLowFriends] || !got[bots.SignalImpossibleTravel] {
		t.Fatalf("reasons %+v, want low friends and impossible travel", d.Classified[0].Reasons)
	}
	if len(d.Decisions) != 1 || d.Decisions[0].Reason != offers.ReasonAutomated || d.Decisions[0].Detail == "" {
		t.Fatalf("decisions %+v, want one automated_account with its evidence", d.Decisions)
	}
	// The bot state survives a checkpoint: a fresh partition loaded from it
	// still refuses the same purchase as a duplicate.
	q, _ := New(Config{Directory: dir{"u": fan}, Rules: compiled(t, r), Scorers: newScorers(t), Clock: func() time.Time { return now }})
	st := p.State()
	b, err := st.Fans[fan].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	fs := st.Fans[fan]
	if err := fs.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	st.Fans[fan] = fs
	q.Load(st)
	_, err = q.Apply(purchaseAt("b", "u", now, 35.68, 139.69))
	var rej *events.Rejection
	if !errors.As(err, &rej) || rej.Reason != bots.RejectDuplicate {
		t.Fatalf("a purchase applied again: %v, want a %s rejection", err, bots.RejectDuplicate)
	}
}

// TestBadPurchaseIsDeadLetteredAndChangesNothing: a duplicate purchase is
// refused with its reason and leaves the fan's signals as they were.
func TestBadPurchaseIsDeadLetteredAndChangesNothing(t *testing.T) {
	fan := uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	p, _ := New(Config{Directory: dir{"u": fan}, Rules: rules{}, Scorers: newScorers(t), Clock: func() time.Time { return now }})
	if _, err := p.Apply(purchaseAt("a", "u", now, 51.5, -0.1)); err != nil {
		t.Fatal(err)
	}
	before, _ := p.State().Fans[fan].MarshalBinary()
	p.Flush()
	_, err := p.Apply(purchaseAt("a", "u", now.Add(time.Minute), 35.68, 139.69))
	var rej *events.Rejection
	if !errors.As(err, &rej) || rej.Reason != bots.RejectDuplicate {
		t.Fatalf("duplicate: %v", err)
	}
	after, _ := p.State().Fans[fan].MarshalBinary()
	if string(before) != string(after) {
		t.Fatal("a dead-lettered purchase changed the fan's state")
	}
	if d := p.Flush(); !d.Empty() {
		t.Fatalf("a dead-lettered purchase left a delta: %+v", d)
	}
}

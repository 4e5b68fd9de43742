package scoring

import (
	"math"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/crescendo-hq/crescendo/events"
)

var (
	t0   = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	show = time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	day  = 24 * time.Hour
)

var seq int

func mkEvent(typ events.Type, at time.Time) events.Event {
	seq++
	return events.Event{ID: "e" + strconv.Itoa(seq), Source: "partner", Subject: "u1", Type: typ, Time: at}
}

func listenEv(perf string, at time.Time, minutes float64) events.Event {
	e := mkEvent(events.TypeListen, at)
	e.Listen = &events.Listen{Performer: perf, Track: "t", MsPlayed: int64(minutes * 60000), Device: "mobile", Country: "GB"}
	return e
}

func postEv(text string, at time.Time) events.Event {
	e := mkEvent(events.TypeSocialPost, at)
	e.SocialPost = &events.SocialPost{Text: text, Channel: "x"}
	return e
}

func photoEv(perf string, at time.Time) events.Event {
	e := mkEvent(events.TypePhotoTag, at)
	e.PhotoTag = &events.PhotoTag{Performer: perf}
	return e
}

func pageEv(perf string, at time.Time) events.Event {
	e := mkEvent(events.TypePageView, at)
	e.PageView = &events.PageView{Performer: perf, URL: "https://example.com/" + perf}
	return e
}

func followEv(perf string, at time.Time) events.Event {
	e := mkEvent(events.TypeFollow, at)
	e.Follow = &events.Follow{Performer: perf}
	return e
}

func merchEv(perf string, at time.Time, amount int64) events.Event {
	e := mkEvent(events.TypeMerchPurchase, at)
	e.MerchPurchase = &events.MerchPurchase{Performer: perf, Item: "t-shirt", Amount: amount}
	return e
}

func donationEv(charity string, at time.Time, amount int64) events.Event {
	e := mkEvent(events.TypeDonation, at)
	e.Donation = &events.Donation{Charity: charity, Amount: amount}
	return e
}

func attendanceEv(perf, showID string, at time.Time) events.Event {
	e := mkEvent(events.TypeAttendance, at)
	e.Attendance = &events.Attendance{Event: showID, Performer: perf, VerifiedBy: "ticket_scan"}
	return e
}

func ticketEv(perf string, at time.Time) events.Event {
	e := mkEvent(events.TypeTicketPurchase, at)
	e.TicketPurchase = &events.TicketPurchase{Event: "s1", Performer: perf, Quantity: 1, Price: 4500}
	return e
}

func graphEv(friends int64, at time.Time) events.Event {
	e := mkEvent(events.TypeSocialGraph, at)
	e.SocialGraph = &events.SocialGraph{FriendCount: friends}
	return e
}

// testProfile is the default profile without decay, so points add up exactly.
func testProfile() Profile {
	p := DefaultProfile()
	p.ID = "test"
	p.HalfLife = 0
	return p
}

var aurora = Performer{ID: "aurora", Names: []string{"Aurora Lane", "@AuroraLane"}, Charities: []string{"oxfam", "shelter"}, ShowDate: show, ProfileID: "test"}

func newScorer(t testing.TB, p Profile, perfs ...Performer) *Scorer {
	t.Helper()
	if len(perfs) == 0 {
		perfs = []Performer{aurora}
	}
	for i := range perfs {
		perfs[i].ProfileID = p.ID
	}
	s, err := NewScorer(Config{Profiles: []Profile{p}, Performers: perfs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// apply applies ev to st for performer id and returns the delta and the contributions.
func apply(s *Scorer, st *PairState, ev events.Event, id string) (float64, []Contribution) {
	return s.Apply(nil, st, ev, id)
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-5*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func signalsOf(cs []Contribution) map[Signal]float64 {
	m := map[Signal]float64{}
	for _, c := range cs {
		m[c.Signal] += c.Points
	}
	return m
}

func sizeofPair() uintptr { return unsafe.Sizeof(PairState{}) }

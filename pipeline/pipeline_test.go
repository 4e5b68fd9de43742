package pipeline

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/fans"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/sessions"
)

type dir map[string]uuid.UUID

func (d dir) KnownPartner(id string) bool { return id == "p" }
func (d dir) Account(partner, user string) (Account, bool) {
	f, ok := d[user]
	if user == "narrow" {
		return Account{Fan: f, Scope: fans.Scope{events.TypeListen}, Home: user}, ok
	}
	return Account{Fan: f, Home: user}, ok && partner == "p"
}

type rules []*offers.Program

// compiled compiles rules against a show far ahead.
func compiled(t *testing.T, rs ...offers.Rule) rules {
	t.Helper()
	var out rules
	for _, r := range rs {
		p, err := offers.Compile(r, offers.Show{ID: r.ShowID, StartsAt: time.Date(2030, 1, 1, 20, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func (r rules) ForPerformer(p string) []*offers.Program {
	if p == "perf" {
		return r
	}
	return nil
}

// minuteScorer gives a streaming point per minute listened, without decay, so
// that index values read as minutes.
type minuteScorer struct{ s *scoring.Scorer }

func (m minuteScorer) Scorer() *scoring.Scorer { return m.s }

func newScorers(t *testing.T) minuteScorer {
	t.Helper()
	prof := scoring.DefaultProfile()
	prof.StreamMode, prof.StreamThresholdMinutes, prof.StreamCap, prof.HalfLife = scoring.StreamCount, 1, 255, 0
	s, err := scoring.NewScorer(scoring.Config{Profiles: []scoring.Profile{prof}, Performers: []scoring.Performer{{ID: "perf", Names: []string{"Perf"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return minuteScorer{s}
}

func listenAt(user string, at time.Time, minutes int) events.Event {
	return events.Event{ID: user + at.String(), Source: "p", Subject: user, Type: events.TypeListen, Time: at,
		Listen: &events.Listen{Performer: "perf", MsPlayed: int64(minutes) * 60_000}}
}

func TestPartitionIssuesOffersOnlyInALiveSession(t *testing.T) {
	fan := uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	r := offers.Rule{ID: "r", Version: 1, PerformerID: "perf", ShowID: "s", Lifetime: time.Hour,
		Tiers:    []offers.Tier{{Threshold: 10, Perks: []string{"presale"}}, {Threshold: 30, Perks: []string{"vip_upgrade"}}},
		Channels: []offers.Channel{offers.ChannelSMS}}
	p, err := New(Config{Directory: dir{"u": fan}, Rules: compiled(t, r), Scorers: newScorers(t), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}

	res, err := p.Apply(listenAt("u", now, 9))
	if err != nil || len(res.Offers) != 0 || res.Fan != fan {
		t.Fatalf("below threshold: %+v %v", res, err)
	}
	res, _ = p.Apply(listenAt("u", now.Add(time.Minute), 2))
	if len(res.Offers) != 1 || res.Offers[0].Tier != 1 || res.Offers[0].IndexValue != 11 {
		t.Fatalf("crossing tier 1: %+v", res.Offers)
	}
	// A follow scores a point; the fan is in a live session, but no new tier is reached.
	res, _ = p.Apply(events.Event{ID: "f", Source: "p", Subject: "u", Type: events.TypeFollow, Time: now, Follow: &events.Follow{Performer: "perf"}})
	if len(res.Offers) != 0 {
		t.Fatalf("follow issued offers: %+v", res.Offers)
	}
	if got := p.Index(fan, "perf", now.Add(time.Minute)); got != 12 {
		t.Fatalf("index after 11 minutes and a follow = %v, want 12", got)
	}
	// A late play from two hours earlier is outside the live session: it adds to
	// the index but the crossing it causes issues nothing.
	res, _ = p.Apply(listenAt("u", now.Add(-2*time.Hour), 20))
	if len(res.Offers) != 0 {
		t.Fatalf("crossing outside a live session issued %+v", res.Offers)
	}
	// The next live listen issues tier 2, once.
	res, _ = p.Apply(listenAt("u", now.Add(2*time.Minute), 1))
	if len(res.Offers) != 1 || res.Offers[0].Tier != 2 {
		t.Fatalf("tier 2: %+v", res.Offers)
	}
	res, _ = p.Apply(listenAt("u", now.Add(3*time.Minute), 1))
	if len(res.Offers) != 0 {
		t.Fatalf("offer issued twice: %+v", res.Offers)
	}

	d := p.Flush()
	if len(d.Offers) != 2 || len(d.Pairs) != 1 || len(d.Sessions) != 1 {
		t.Fatalf("delta: %d offers, %d pairs, %d sessions", len(d.Offers), len(d.Pairs), len(d.Sessions))
	}
	var streamed, follows float64
	for _, c := range d.Contributions {
		switch c.Signal {
		case scoring.SignalStreaming:
			streamed += c.Points
		case scoring.SignalFollow:
			follows += c.Points
		}
		if c.Fan != fan || c.Performer != "perf" || c.EventID == "" {
			t.Errorf("contribution %+v", c)
		}
	}
	if streamed != 33 || follows != 1 {
		t.Errorf("contributions: %v streaming, %v follow points; want 33 and 1", streamed, follows)
	}
	if !p.Flush().Empty() {
		t.Fatal("second flush not empty")
	}

	// State reloaded into a new owner remembers the offers already issued.
	q, _ := New(Config{Directory: dir{"u": fan}, Rules: compiled(t, r), Scorers: newScorers(t)})
	q.Load(State{Pairs: pairMap(d.Pairs), Sessions: sessionMap(d.Sessions), Issued: map[offers.Key]time.Time{d.Offers[0].Key(): now, d.Offers[1].Key(): now}})
	if got, want := q.Index(fan, "perf", now.Add(3*time.Minute)), p.Index(fan, "perf", now.Add(3*time.Minute)); got != want {
		t.Fatalf("reloaded index %v, original %v", got, want)
	}
	res, _ = q.Apply(listenAt("u", now.Add(4*time.Minute), 1))
	if len(res.Offers) != 0 {
		t.Fatalf("reloaded owner re-issued %+v", res.Offers)
	}
}

func TestPartitionDropsUnlinkedAndRejectsUnknownPartners(t *testing.T) {
	p, _ := New(Config{Directory: dir{}, Rules: rules{}, Scorers: newScorers(t)})
	res, err := p.Apply(listenAt("stranger", time.Now(), 5))
	if err != nil || !res.Dropped || res.DropReason != DropUnlinked {
		t.Fatalf("unlinked: %+v %v", res, err)
	}
	if !p.Flush().Empty() {
		t.Fatal("a dropped event left state behind")
	}
	ev := listenAt("u", time.Now(), 5)
	ev.Source = "impostor"
	_, err = p.Apply(ev)
	var rej *events.Rejection
	if !errors.As(err, &rej) || rej.Reason != ReasonUnknownPartner {
		t.Fatalf("unknown partner: %v", err)
	}
}

func TestPartitionHonoursConsentScopeAndForgetsErasedFans(t *testing.T) {
	fan, other := uuid.New(), uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	p, _ := New(Config{Directory: dir{"narrow": fan, "u": other}, Rules: rules{}, Scorers: newScorers(t)})
	res, err := p.Apply(events.Event{ID: "x", Source: "p", Subject: "narrow", Type: events.TypeFollow, Time: now, Follow: &events.Follow{Performer: "perf"}})
	if err != nil || !res.Dropped || res.DropReason != DropOutOfScope {
		t.Fatalf("follow outside a listen-only consent: %+v %v", res, err)
	}
	if res, _ := p.Apply(listenAt("narrow", now, 3)); res.Dropped {
		t.Fatal("listen inside the consent scope dropped")
	}
	p.Apply(listenAt("u", now, 3))
	if n := p.Forget(map[uuid.UUID]struct{}{fan: {}}); n != 2 { // one pair, one session
		t.Fatalf("forgot %d entries, want 2", n)
	}
	st := p.State()
	for k := range st.Pairs {
		if k.Fan == fan {
			t.Fatal("erased fan still has listening state")
		}
	}
	if _, ok := st.Sessions[fan]; ok || len(st.Sessions) != 1 {
		t.Fatalf("sessions after erasure: %v", st.Sessions)
	}
	if d := p.Flush(); len(d.Pairs) != 1 || len(d.Sessions) != 1 {
		t.Fatalf("dirty state after erasure: %d pairs, %d sessions; want only the other fan's", len(d.Pairs), len(d.Sessions))
	}
}

func TestRecomputeKeepsValuesAndFoldsDecay(t *testing.T) {
	prof := scoring.DefaultProfile()
	prof.StreamMode, prof.StreamThresholdMinutes, prof.StreamCap, prof.HalfLife = scoring.StreamCount, 1, 255, 24*time.Hour
	s, err := scoring.NewScorer(scoring.Config{Profiles: []scoring.Profile{prof}, Performers: []scoring.Performer{{ID: "perf", Names: []string{"Perf"}}}})
	if err != nil {
		t.Fatal(err)
	}
	fan := uuid.New()
	p, _ := New(Config{Directory: dir{"u": fan}, Rules: rules{}, Scorers: minuteScorer{s}})
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	p.Apply(listenAt("u", now, 8))
	later := now.Add(48 * time.Hour)
	before := p.Index(fan, "perf", later)
	if before < 1.99 || before > 2.01 { // 8 points after two half-lives
		t.Fatalf("index after two half-lives = %v, want 2", before)
	}
	stateBefore := p.State().Pairs
	if n := p.Recompute(later); n != 1 {
		t.Fatalf("recomputed %d pairs, want 1", n)
	}
	if after := p.Index(fan, "perf", later); after < before-1e-4 || after > before+1e-4 {
		t.Fatalf("recompute changed the value: %v, was %v", after, before)
	}
	if maps.Equal(stateBefore, p.State().Pairs) {
		t.Fatal("recompute left the stored state as it was")
	}
}

func sessionMap(entries []SessionEntry) map[uuid.UUID]sessions.Session {
	m := make(map[uuid.UUID]sessions.Session, len(entries))
	for _, e := range entries {
		m[e.Fan] = e.Session
	}
	return m
}

func pairMap(entries []PairEntry) map[PairKey]scoring.PairState {
	m := make(map[PairKey]scoring.PairState, len(entries))
	for _, e := range entries {
		m[e.Key] = e.State
	}
	return m
}

// A crossing that issues nothing records why once, not at every event, and
// again only when the reason changes; an offer ends the record.
func TestDecisionsAreRecordedWhenTheReasonChanges(t *testing.T) {
	fan := uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	r := offers.Rule{ID: "r", Version: 1, PerformerID: "perf", ShowID: "s", Lifetime: time.Hour,
		Tiers:     []offers.Tier{{Threshold: 5, Perks: []string{"presale"}}},
		Channels:  []offers.Channel{offers.ChannelSMS},
		Condition: `index.value >= 8.0 || fan.friend_count >= 10`}
	p, err := New(Config{Directory: dir{"u": fan}, Rules: compiled(t, r), Scorers: newScorers(t), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	follow := func(id string, at time.Time) events.Event {
		return events.Event{ID: id, Source: "p", Subject: "u", Type: events.TypeFollow, Time: at, Follow: &events.Follow{Performer: "perf"}}
	}
	reasons := func() []offers.Reason {
		var out []offers.Reason
		for _, d := range p.Flush().Decisions {
			out = append(out, d.Reason)
		}
		return out
	}
	// 6 points in a live session: the condition says no, once.
	p.Apply(listenAt("u", now, 6))
	p.Apply(listenAt("u", now.Add(time.Minute), 1))
	if got := reasons(); !slices.Equal(got, []offers.Reason{offers.ReasonCondition}) {
		t.Fatalf("decisions %v, want one condition_false", got)
	}
	// Two hours on, the session has ended: a new reason.
	p.Apply(follow("f1", now.Add(2*time.Hour)))
	p.Apply(follow("f2", now.Add(2*time.Hour+time.Minute)))
	if got := reasons(); !slices.Equal(got, []offers.Reason{offers.ReasonNoLiveSession}) {
		t.Fatalf("decisions %v, want one no_live_session", got)
	}
	// Back in a session with enough points: an offer, and no decision.
	res, _ := p.Apply(listenAt("u", now.Add(3*time.Hour), 1))
	if got := reasons(); len(res.Offers) != 1 || len(got) != 0 {
		t.Fatalf("offers %v, decisions %v", res.Offers, got)
	}
}

// A delta lists sessions in the order they first changed, each with how many
// pairs first changed before it, so a writer can put a listen's session next
// to its pair.
func TestFlushPlacesSessionsAmongPairs(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	p, err := New(Config{Directory: dir{"a": a, "b": b, "c": c}, Rules: rules{}, Scorers: newScorers(t)})
	if err != nil {
		t.Fatal(err)
	}
	follow := func(user string) events.Event {
		return events.Event{ID: "f" + user, Source: "p", Subject: user, Type: events.TypeFollow, Time: now, Follow: &events.Follow{Performer: "perf"}}
	}
	for _, ev := range []events.Event{
		follow("a"),           // pair a first: no session
		listenAt("b", now, 5), // b's session, then b's pair
		listenAt("a", now, 5), // a's session; a's pair is listed already
		listenAt("b", now, 1), // nothing newly listed
		follow("c"),           // pair c
		listenAt("c", now, 5), // c's session after every pair
	} {
		if _, err := p.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	d := p.Flush()
	var pairs []uuid.UUID
	for _, e := range d.Pairs {
		pairs = append(pairs, e.Key.Fan)
	}
	if !slices.Equal(pairs, []uuid.UUID{a, b, c}) {
		t.Fatalf("pairs in order %v; want a, b, c", pairs)
	}
	type placed struct {
		fan   uuid.UUID
		pairs int
	}
	var got []placed
	for _, s := range d.Sessions {
		got = append(got, placed{s.Fan, s.Pairs})
	}
	if want := []placed{{b, 1}, {a, 2}, {c, 3}}; !slices.Equal(got, want) {
		t.Fatalf("sessions placed at %v; want %v", got, want)
	}
	if d := p.Flush(); len(d.Sessions) != 0 || len(d.Pairs) != 0 {
		t.Fatalf("second flush: %d sessions, %d pairs", len(d.Sessions), len(d.Pairs))
	}
}

// swapScorer serves whichever Scorer it holds now, as profiles changing do.
type swapScorer struct{ s *scoring.Scorer }

func (w *swapScorer) Scorer() *scoring.Scorer { return w.s }

// A rebuilt Scorer may number its performers differently; the partition's
// cache of performer refs must follow it, or a listen lands on another
// performer's pair.
func TestPairsFollowARebuiltScorer(t *testing.T) {
	fan := uuid.New()
	now := time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)
	build := func(ids ...string) *scoring.Scorer {
		var perfs []scoring.Performer
		for _, id := range ids {
			perfs = append(perfs, scoring.Performer{ID: id, Names: []string{id}})
		}
		s, err := scoring.NewScorer(scoring.Config{Performers: perfs})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sc := &swapScorer{build("x", "y")}
	p, err := New(Config{Directory: dir{"u": fan}, Rules: rules{}, Scorers: sc})
	if err != nil {
		t.Fatal(err)
	}
	listen := func(perf string) {
		t.Helper()
		ev := events.Event{ID: perf, Source: "p", Subject: "u", Type: events.TypeListen, Time: now,
			Listen: &events.Listen{Performer: perf, MsPlayed: 60 * 60_000}}
		if _, err := p.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	listen("x")
	sc.s = build("y", "x") // y now sits where x did
	listen("y")
	got := map[string]bool{}
	for _, e := range p.Flush().Pairs {
		got[e.Key.Performer] = true
	}
	if len(got) != 2 || !got["x"] || !got["y"] {
		t.Fatalf("pairs for performers %v; want x and y", got)
	}
}

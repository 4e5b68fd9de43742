package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/queue"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// commitDelta writes one checkpoint of d for partition 0 of a test group.
func commitDelta(t *testing.T, s *store.Store, d pipeline.Delta) []uuid.UUID {
	t.Helper()
	pid := store.PartitionID{Group: "g", Topic: "fan-activity", Partition: 0}
	_, next, err := s.LoadPartition(t.Context(), pid)
	must(t, err)
	ids, err := s.Commit(t.Context(), store.Checkpoint{PartitionID: pid, From: next, To: max(next, 0) + 1, Delta: d}, nil)
	must(t, err)
	return ids
}

func classOf(t *testing.T, s *store.Store, fan uuid.UUID) store.BotClassification {
	t.Helper()
	c, err := s.FanClassification(t.Context(), fan)
	must(t, err)
	return c
}

// TestRingJobClassifiesRingAutomated stores social graphs through
// checkpoints — a ring of eight accounts that all befriend each other, and
// people with a few friends each — runs the scheduled job and finds the
// ring, and only the ring, automated with its evidence.
func TestRingJobClassifiesRingAutomated(t *testing.T) {
	s := open(t)
	queueCatalog(t, s)
	ring := seedFans(t, s, "r", 8)
	people := seedFans(t, s, "h", 30)
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var facts []pipeline.FanFact
	for i, f := range ring {
		var friends []string
		for j := range ring {
			if j != i {
				friends = append(friends, fmt.Sprint("r", j))
			}
		}
		facts = append(facts, pipeline.FanFact{Fan: f, FanFact: scoring.FanFact{FriendCount: 40, EventID: "p/g", At: at},
			Partner: "p", Friends: friends, Interactions: []events.Interaction{{With: fmt.Sprint("r", (i+1)%8), Count: 9}}})
	}
	for i, f := range people {
		facts = append(facts, pipeline.FanFact{Fan: f, FanFact: scoring.FanFact{FriendCount: 200, EventID: "p/g", At: at},
			Partner: "p", Friends: []string{fmt.Sprint("h", (i+1)%30), fmt.Sprint("h", (i+11)%30), fmt.Sprint("r", i%8)}})
	}
	commitDelta(t, s, pipeline.Delta{FanFacts: facts})
	n, err := s.DetectBots(t.Context(), at)
	must(t, err)
	if n != int64(len(ring)) {
		t.Fatalf("job changed %d fans, want the %d of the ring", n, len(ring))
	}
	for _, f := range ring {
		c := classOf(t, s, f)
		if c.Class != bots.Automated || len(c.Reasons) != 1 || c.Reasons[0].Signal != bots.SignalRing {
			t.Fatalf("ring member: %+v, want automated for the ring", c)
		}
	}
	for _, f := range people {
		if c := classOf(t, s, f); c.Class != bots.Human {
			t.Fatalf("person: %+v, want human", c)
		}
	}
	// Running again changes nothing.
	if n, err := s.DetectBots(t.Context(), at); err != nil || n != 0 {
		t.Fatalf("second run changed %d, %v; want 0", n, err)
	}
}

// TestClassificationReachesQueuesOffersAndOverrides: the consumer's live
// class is stored with its reasons; the automated fan is relegated in a
// queue, its offer is refused with the reason; a marketer's override makes
// it human again, with an audit record, and clearing it restores the evidence.
func TestClassificationReachesQueuesOffersAndOverrides(t *testing.T) {
	s := openSale(t, 10, time.Minute, queue.Relegate)
	fans := seedFans(t, s, "u", 2)
	bot, person := fans[0], fans[1]
	live := bots.Classify(bots.Evidence{FriendCount: 2, FriendsKnown: true, Live: bots.Summary{Impossible: 3, FastestKmh: 9000}}, bots.DefaultThresholds())
	if live.Class != bots.Automated {
		t.Fatalf("test evidence classifies %s", live.Class)
	}
	offer := offers.Offer{ID: uuid.New(), FanID: bot, RuleID: "rule-show", RuleVersion: 1, Tier: 1, PerformerID: "perf", ShowID: "show",
		Perks: []string{"presale"}, IndexValue: 12, EventID: "p/e1", IssuedAt: saleOpens, ExpiresAt: saleOpens.Add(time.Hour)}
	ids := commitDelta(t, s, pipeline.Delta{Classified: []pipeline.Classified{{Fan: bot, Classification: live}}, Offers: []offers.Offer{offer}})
	if len(ids) != 0 {
		t.Fatalf("an automated fan's offer was inserted: %v", ids)
	}
	var reason string
	must(t, s.Pool().QueryRow(t.Context(), `SELECT reason FROM offer_decisions WHERE fan_id = $1`, bot).Scan(&reason))
	if reason != string(offers.ReasonAutomated) {
		t.Fatalf("decision reason %q, want %s", reason, offers.ReasonAutomated)
	}
	c := classOf(t, s, bot)
	if c.Class != bots.Automated || len(c.Reasons) != 2 {
		t.Fatalf("stored class %+v, want automated with two reasons", c)
	}
	e, _, err := s.JoinQueue(t.Context(), "show", bot, saleOpens.Add(time.Minute))
	must(t, err)
	if e.Queue != queue.Relegated {
		t.Fatalf("automated fan joined %s, want relegated", e.Queue)
	}
	if c := classOf(t, s, person); c.Class != bots.Human || len(c.Reasons) != 0 {
		t.Fatalf("unclassified fan: %+v, want human", c)
	}

	var inv *store.InvalidError
	if _, err := s.SetBotOverride(t.Context(), bot, bots.Human, "", "acme/token"); !errors.As(err, &inv) {
		t.Fatalf("override without a note: %v, want invalid", err)
	}
	c, err = s.SetBotOverride(t.Context(), bot, bots.Human, "verified by phone", "acme/token")
	must(t, err)
	if c.Class != bots.Human || !c.Overridden || c.Reasons[0].Signal != bots.SignalOverride {
		t.Fatalf("after override: %+v", c)
	}
	// Later evidence does not undo the override.
	commitDelta(t, s, pipeline.Delta{Classified: []pipeline.Classified{{Fan: bot, Classification: live}}})
	if c := classOf(t, s, bot); c.Class != bots.Human {
		t.Fatalf("new evidence undid the override: %+v", c)
	}
	c, err = s.ClearBotOverride(t.Context(), bot, "phone number was recycled", "acme/token")
	must(t, err)
	if c.Class != bots.Automated || c.Overridden {
		t.Fatalf("after clearing: %+v, want automated from the evidence", c)
	}
	log, err := s.BotOverrideLog(t.Context(), bot)
	must(t, err)
	if len(log) != 2 || log[0].Class == nil || *log[0].Class != bots.Human || log[0].Previous != bots.Automated ||
		log[1].Class != nil || log[1].Previous != bots.Human || log[1].SetBy != "acme/token" {
		t.Fatalf("audit log %+v", log)
	}

	// The watch list: a strong signal on its own.
	must(t, s.WatchReseller(t.Context(), person, "bought 40 tickets for one show", "acme/token"))
	if c := classOf(t, s, person); c.Class != bots.Automated || c.Reasons[0].Signal != bots.SignalWatchList {
		t.Fatalf("watched fan: %+v", c)
	}
	list, err := s.WatchedResellers(t.Context(), "acme")
	must(t, err)
	if len(list) != 1 || list[0].FanID != person {
		t.Fatalf("watch list %+v", list)
	}
	if other, err := s.WatchedResellers(t.Context(), "other"); err != nil || len(other) != 0 {
		t.Fatalf("another organization sees %+v, %v", other, err)
	}
	must(t, s.UnwatchReseller(t.Context(), person))
	if c := classOf(t, s, person); c.Class != bots.Human {
		t.Fatalf("unwatched fan: %+v", c)
	}
	if err := s.UnwatchReseller(t.Context(), person); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unwatching twice: %v", err)
	}
}

// TestClassSharesCountsTheOrganizationsFans counts, for the console's plot,
// only fans with contributions to the organization's own performers, each
// once, by class.
func TestClassSharesCountsTheOrganizationsFans(t *testing.T) {
	s := open(t)
	queueCatalog(t, s)
	ctx := t.Context()
	must(t, s.PutPerformer(ctx, "other", "Another org's performer"))
	fans := seedFans(t, s, "c", 5)
	contribute := func(fan uuid.UUID, performer string) {
		_, err := s.Pool().Exec(ctx, `INSERT INTO contributions (fan_id, performer_id, signal, points, event_id, at)
			VALUES ($1, $2, 'stream', 1, 'p/e', now())`, fan, performer)
		must(t, err)
	}
	for _, f := range fans[:4] {
		contribute(f, "perf")
		contribute(f, "perf") // twice: still one fan
	}
	contribute(fans[4], "other") // not this organization's
	must(t, s.SetFanClassification(ctx, fans[0], queue.Automated, "reacts in 40 ms"))
	_, err := s.SetBotOverride(ctx, fans[1], bots.Suspect, "resale pattern", "test")
	must(t, err)
	_, err = s.SetBotOverride(ctx, fans[4], bots.Automated, "not acme's", "test")
	must(t, err)

	got, err := s.ClassShares(ctx, "acme")
	must(t, err)
	want := map[string]int{"automated": 1, "suspect": 1, "unknown": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("class shares %v, want %v", got, want)
	}
}

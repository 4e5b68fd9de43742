package pipeline

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
)

type benchDir map[string]Account

func (d benchDir) KnownPartner(id string) bool { return id == "p" }
func (d benchDir) Account(_, user string) (Account, bool) {
	a, ok := d[user]
	return a, ok
}

type noRules struct{}

func (noRules) ForPerformer(string) []*offers.Program { return nil }

type fixedScorer struct{ s *scoring.Scorer }

func (f fixedScorer) Scorer() *scoring.Scorer { return f.s }

// BenchmarkApply runs one partition's share of the bench command's stream
// (12,500 fans, 1,000 performers by a Zipf law, its mix of event types)
// through a Partition, flushing every 5,000 events as the consumer does.
func BenchmarkApply(b *testing.B) {
	const fans, performers, batch = 12_500, 1_000, 5_000
	rng := mrand.New(mrand.NewPCG(1, 2))
	dir := benchDir{}
	for i := range fans {
		u := fmt.Sprintf("u%d", i)
		dir[u] = Account{Fan: uuid.New(), Home: u}
	}
	perfs := make([]scoring.Performer, performers)
	for i := range perfs {
		perfs[i] = scoring.Performer{ID: fmt.Sprintf("perf-%d", i), Names: []string{fmt.Sprintf("Performer perf-%d", i)}}
	}
	s, err := scoring.NewScorer(scoring.Config{Profiles: []scoring.Profile{scoring.DefaultProfile()}, Performers: perfs})
	if err != nil {
		b.Fatal(err)
	}
	zipf := mrand.NewZipf(rng, 1.1, 8, performers-1)
	now := time.Now().UTC()
	evs := make([]events.Event, 1<<18)
	for i := range evs {
		perf := perfs[zipf.Uint64()].ID
		ev := events.Event{ID: fmt.Sprintf("e%d", i), Source: "p", Subject: fmt.Sprintf("u%d", rng.IntN(fans)),
			Time: now.Add(-time.Duration(rng.IntN(48*3600)) * time.Second)}
		switch r := rng.IntN(100); {
		case r < 80:
			ev.Type, ev.Listen = events.TypeListen, &events.Listen{Performer: perf, MsPlayed: int64(30_000 + rng.IntN(270_000))}
		case r < 88:
			ev.Type, ev.PageView = events.TypePageView, &events.PageView{Performer: perf, URL: "https://example.com/" + perf}
		case r < 93:
			ev.Type, ev.Follow = events.TypeFollow, &events.Follow{Performer: perf}
		case r < 96:
			ev.Type, ev.SocialPost = events.TypeSocialPost, &events.SocialPost{Text: "I love Performer " + perf}
		case r < 98:
			ev.Type, ev.PhotoTag = events.TypePhotoTag, &events.PhotoTag{Performer: perf}
		default:
			ev.Type, ev.MerchPurchase = events.TypeMerchPurchase, &events.MerchPurchase{Performer: perf, Amount: 2500, Currency: "GBP"}
		}
		evs[i] = ev
	}
	p, err := New(Config{Directory: dir, Rules: noRules{}, Scorers: fixedScorer{s}})
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range evs { // warm: every pair exists, as after the first minutes of a stream
		if _, err := p.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	p.Flush()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := p.Apply(evs[i&(len(evs)-1)]); err != nil {
			b.Fatal(err)
		}
		if i%batch == batch-1 {
			p.Flush()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(p.State().Pairs)), "pairs")
}

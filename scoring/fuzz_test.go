package scoring

import (
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	fuzzOnce   sync.Once
	fuzzScorer *Scorer
)

func fuzzTarget(t testing.TB) *Scorer {
	fuzzOnce.Do(func() {
		var err error
		fuzzScorer, err = NewScorer(Config{Performers: []Performer{
			{ID: "aurora", Names: []string{"Aurora Lane", "@AuroraLane"}, ShowDate: show},
			{ID: "beyonce", Names: []string{"Beyoncé", "Queen B"}},
			{ID: "nodoubt", Names: []string{"No Doubt"}},
			{ID: "sigma", Names: []string{"ΣΊΣΥΦΟΣ"}},
			{ID: "heart", Names: []string{"💖 Band"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	})
	return fuzzScorer
}

// FuzzAffinity checks that the parser never panics on any bytes, and reads
// a post the same whether it is written in upper, lower or mixed case.
func FuzzAffinity(f *testing.F) {
	for _, seed := range []string{
		"I love Aurora Lane",
		"I don’t LOVE aurora lane's new album",
		"BEYONCÉ!!! obsessed with her 😍",
		"looks like No Doubt, but I love No Doubt",
		"ſtraße Σίσυφος ΣΊΣΥΦΟΣ ς İstanbul ı",
		"\xff\xfe love \xc3 Aurora\x00Lane",
		"I ❤️ 💖 Band",
		"queen b'S fans",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s := fuzzTarget(t)
		for _, id := range []string{"aurora", "beyonce", "nodoubt", "sigma", "heart"} {
			want := s.Analyze(text, id)
			for _, variant := range []string{strings.ToUpper(text), strings.ToLower(text), strings.ToTitle(text)} {
				if got := s.Analyze(variant, id); got != want {
					t.Fatalf("%s: %q gives %+v but %q gives %+v", id, text, want, variant, got)
				}
			}
			if want.Affinity && (!want.Mentioned || want.Negated) {
				t.Fatalf("inconsistent match %+v", want)
			}
		}
		// Scoring the post must not panic either, and must never score
		// a performer the post does not name.
		ev := postEv(text, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC))
		targets := s.Targets(nil, ev)
		for _, id := range []string{"aurora", "beyonce", "nodoubt", "sigma", "heart"} {
			var st PairState
			delta, _ := s.Apply(nil, &st, ev, id)
			named := false
			for _, tid := range targets {
				named = named || tid == id
			}
			if delta < 0 || delta > 0 && !named {
				t.Fatalf("%s: delta %v, targets %v", id, delta, targets)
			}
		}
	})
}

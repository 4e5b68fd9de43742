package scoring

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDefaultProfileIsValid(t *testing.T) {
	if err := DefaultProfile().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range Signals() {
		if DefaultProfile().Weights.Of(s) != 1 {
			t.Errorf("default weight of %s is not 1", s)
		}
	}
	if (Weights{}).Of("nonsense") != 0 {
		t.Error("weight of an unknown signal")
	}
}

// Validate lists every problem, each under its field path, so a marketer
// fixes a profile in one round.
func TestProfileValidateListsEveryProblem(t *testing.T) {
	p := Profile{
		ID:                     " ",
		Weights:                Weights{Affinity: -1, Post: math.NaN(), Human: math.Inf(1)},
		AffinityWords:          []string{"love", "!!!"},
		NegationWords:          []string{"not", "LOVE"},
		AffinityWindowWords:    0,
		NegationWindowWords:    -2,
		RecentMonths:           -1,
		StreamThresholdMinutes: 0,
		StreamPeriod:           30 * time.Second,
		StreamMode:             "sometimes",
		PostCap:                0,
		HalfLife:               -time.Hour,
		MinFriends:             -5,
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	wantPaths := []string{
		"id:", "weights.affinity:", "weights.post:", "weights.human:",
		"affinity_words[1]:", "negation_words[1]:", "affinity_window_words:", "negation_window_words:",
		"recent_months:", "stream_threshold_minutes:", "stream_period:", "stream_mode:",
		"post_cap:", "half_life:", "min_friends:",
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range wantPaths {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem reported for %s in:\n%v", w, err)
		}
	}
	if len(lines) != len(wantPaths) {
		t.Errorf("%d problems, want %d:\n%v", len(lines), len(wantPaths), err)
	}

	// Problems that need other fields set to show.
	p = DefaultProfile()
	p.AffinityWords = nil
	p.StreamMode = StreamCount
	p.StreamCap = 0
	p.StreamPeriod = time.Hour
	p.StreamThresholdMinutes = 61
	p.HalfLife = time.Second
	p.ComparisonWords = append(p.ComparisonWords, "not")
	err = p.Validate()
	for _, w := range []string{"affinity_words:", "stream_cap:", "stream_threshold_minutes:", "half_life:", "comparison_words["} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("no problem reported for %s in:\n%v", w, err)
		}
	}
	p = DefaultProfile()
	p.StreamPeriod = 200 * 365 * 24 * time.Hour
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "stream_period:") {
		t.Errorf("a period beyond the compact clock passed: %v", err)
	}
	p.StreamPeriod = time.Hour + time.Millisecond
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "stream_period:") {
		t.Errorf("a fractional period passed: %v", err)
	}
}

func TestPerformerValidate(t *testing.T) {
	err := Performer{ID: "", Names: []string{"ok", "…"}, Charities: []string{"a", "", "a"}}.Validate()
	for _, w := range []string{"id:", "names[1]:", "charities[1]:", "charities[2]:"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("no problem reported for %s in:\n%v", w, err)
		}
	}
	if err := (Performer{ID: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), "names:") {
		t.Errorf("no names passed: %v", err)
	}
	if err := aurora.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNewScorerReportsPaths(t *testing.T) {
	bad := DefaultProfile()
	bad.ID = "bad"
	bad.PostCap = -1
	_, err := NewScorer(Config{
		Profiles: []Profile{testProfile(), testProfile(), bad},
		Performers: []Performer{
			{ID: "a", Names: []string{"A"}, ProfileID: "missing"},
			{ID: "a", Names: []string{"B"}},
			{ID: "c"},
		},
	})
	for _, w := range []string{
		"profiles[1].id:", "profiles[2].post_cap:", "performers[0].profile_id:",
		"performers[1].id:", "performers[2].names:",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("no problem reported for %s in:\n%v", w, err)
		}
	}
	// A performer naming no profile gets the default; a configured "default" replaces it.
	custom := DefaultProfile()
	custom.MinFriends = 7
	s, err := NewScorer(Config{Profiles: []Profile{custom}, Performers: []Performer{{ID: "a", Names: []string{"A"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Profile("a"); p.MinFriends != 7 {
		t.Errorf("profile %+v, want the configured default", p)
	}
}

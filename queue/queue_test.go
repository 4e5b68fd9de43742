package queue

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAssignGivesTiersToHumansOnly(t *testing.T) {
	for _, c := range []struct {
		tier   int
		class  Class
		policy Policy
		want   Queue
		err    error
	}{
		{2, Human, Relegate, 2, nil},
		{0, Human, Bar, General, nil},
		{-3, Unknown, Bar, General, nil},
		{1, Unknown, Relegate, 1, nil},
		{3, Automated, Relegate, Relegated, nil},
		{0, Automated, Relegate, Relegated, nil},
		{3, Automated, Bar, 0, ErrBarred},
	} {
		got, err := Assign(c.tier, c.class, c.policy)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("Assign(%d, %s, %s) = %v, %v; want %v, %v", c.tier, c.class, c.policy, got, err, c.want, c.err)
		}
	}
}

func TestQueuesAreAdmittedTiersFirstThenGeneralThenRelegated(t *testing.T) {
	qs := []Queue{General, Relegated, 1, 3, 2}
	Sort(qs)
	if want := []Queue{3, 2, 1, General, Relegated}; !slices.Equal(qs, want) {
		t.Fatalf("order %v, want %v", qs, want)
	}
	for i := range qs {
		for j := range qs {
			if qs[i].Before(qs[j]) != (i < j) {
				t.Errorf("%v.Before(%v) = %v", qs[i], qs[j], !(i < j))
			}
		}
	}
	names := []string{Queue(2).String(), General.String(), Relegated.String()}
	if want := []string{"tier-2", "general", "relegated"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}

func TestPositionCountsEveryoneWaitingAhead(t *testing.T) {
	waiting := []Waiting{{General, 100}, {2, 5}, {1, 10}, {Relegated, 7}}
	for _, c := range []struct {
		q     Queue
		ahead int64
		want  int64
	}{
		{2, 0, 1},
		{2, 4, 5},
		{1, 0, 6},
		{General, 0, 16},
		{General, 99, 115},
		{Relegated, 6, 122},
		{3, 0, 1}, // a tier above every other
	} {
		if got := Position(c.q, c.ahead, waiting); got != c.want {
			t.Errorf("Position(%v, %d) = %d, want %d", c.q, c.ahead, got, c.want)
		}
	}
}

func TestBatchTakesFromQueuesInAdmissionOrder(t *testing.T) {
	waiting := []Waiting{{General, 100}, {2, 3}, {1, 0}, {Relegated, 7}}
	for _, c := range []struct {
		size int64
		want []Waiting
	}{
		{2, []Waiting{{2, 2}}},
		{3, []Waiting{{2, 3}}},
		{10, []Waiting{{2, 3}, {General, 7}}},
		{200, []Waiting{{2, 3}, {General, 100}, {Relegated, 7}}},
		{0, nil},
	} {
		if got := Batch(c.size, waiting); !slices.Equal(got, c.want) {
			t.Errorf("Batch(%d) = %v, want %v", c.size, got, c.want)
		}
	}
}

func TestNextBatchKeepsTheRateWithoutBursts(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	iv := 30 * time.Second
	// On time, or a little late: the next batch stays on the grid.
	if got := NextBatchAt(t0, t0, iv); !got.Equal(t0.Add(iv)) {
		t.Errorf("on time: %v", got)
	}
	if got := NextBatchAt(t0, t0.Add(time.Second), iv); !got.Equal(t0.Add(iv)) {
		t.Errorf("a second late: %v", got)
	}
	// Idle for an hour: one interval from now, not a burst of 120 batches.
	late := t0.Add(time.Hour)
	if got := NextBatchAt(t0, late, iv); !got.Equal(late.Add(iv)) {
		t.Errorf("an hour late: %v", got)
	}
}

func TestSectionsFallToTheNextLowerTier(t *testing.T) {
	s := Sections{3: "Floor A", 1: "Lower bowl", 0: "General"}
	for q, want := range map[Queue]string{5: "Floor A", 3: "Floor A", 2: "Lower bowl", 1: "Lower bowl", General: "General", Relegated: "General"} {
		if got := s.For(q); got != want {
			t.Errorf("For(%v) = %q, want %q", q, got, want)
		}
	}
	if got := (Sections{2: "Floor"}).For(1); got != "" {
		t.Errorf("unmapped tier got %q", got)
	}
}

func TestParseSectionsNamesEveryBadKey(t *testing.T) {
	s, err := ParseSections(map[string]string{"2": "Floor A", "0": "General"})
	if err != nil || s[2] != "Floor A" || s[0] != "General" || len(s) != 2 {
		t.Fatalf("ParseSections = %v, %v", s, err)
	}
	if back := s.Strings(); back["2"] != "Floor A" || back["0"] != "General" {
		t.Errorf("Strings = %v", back)
	}
	_, err = ParseSections(map[string]string{"vip": "x", "-1": "y", "01": "z", "1": "ok"})
	if err == nil {
		t.Fatal("bad keys accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Errorf("problems %q, want one per bad key", lines)
	}
}

func TestSettingsValidateListsEveryProblem(t *testing.T) {
	ok := Settings{BatchSize: 100, BatchInterval: 30 * time.Second, Sections: Sections{0: "General"}, Automated: Relegate}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid settings: %v", err)
	}
	bad := Settings{BatchSize: 0, BatchInterval: time.Millisecond, Sections: Sections{1: "", MaxTier + 1: "x"}, Automated: "ban"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid settings accepted")
	}
	var fields []string
	for _, l := range strings.Split(err.Error(), "\n") {
		f, _, _ := strings.Cut(l, ": ")
		fields = append(fields, f)
	}
	want := []string{"batch_size", "batch_interval", "automated", `sections["1"]`, `sections["1001"]`}
	if !slices.Equal(fields, want) {
		t.Errorf("fields %q, want %q", fields, want)
	}
}

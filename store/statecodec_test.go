package store

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/sessions"
)

func newChunkState() chunkState {
	return chunkState{pairs: map[pipeline.PairKey]scoring.PairState{}, fans: map[uuid.UUID]scoring.FanState{}, sessions: map[uuid.UUID]sessions.Session{}, routed: map[int32]int64{}}
}

// pairState scores a few events so the state has every field set.
func pairState(t testing.TB, minutes int) scoring.PairState {
	scorer, err := scoring.NewScorer(scoring.Config{Performers: []scoring.Performer{{ID: "p", Names: []string{"Perf"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var st scoring.PairState
	at := time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	scorer.Apply(nil, &st, events.Event{ID: "1", Source: "s", Subject: "u", Type: events.TypeListen, Time: at,
		Listen: &events.Listen{Performer: "p", MsPlayed: int64(minutes) * 60_000}}, "p")
	scorer.Apply(nil, &st, events.Event{ID: "2", Source: "s", Subject: "u", Type: events.TypeFollow, Time: at,
		Follow: &events.Follow{Performer: "p"}}, "p")
	return st
}

func TestStateChunksRoundTripAndLaterEntriesWin(t *testing.T) {
	now := time.Date(2026, 11, 23, 20, 0, 0, 123, time.UTC)
	fan := uuid.New()
	k := pipeline.PairKey{Fan: fan, Performer: "Beyoncé"}
	other := pipeline.PairKey{Fan: uuid.New(), Performer: ""}
	s1, s2 := pairState(t, 30), pairState(t, 90)
	var fs scoring.FanState
	fs.Apply(events.Event{ID: "g", Source: "s", Subject: "u", Type: events.TypeSocialGraph, Time: now, SocialGraph: &events.SocialGraph{FriendCount: 40}})

	first := encodeChunk(chunkState{pairs: map[pipeline.PairKey]scoring.PairState{k: s1, other: s1},
		sessions: map[uuid.UUID]sessions.Session{fan: {Start: now, Last: now}}, routed: map[int32]int64{0: 7, 3: 1 << 40}})
	second := encodeChunk(chunkState{pairList: []pipeline.PairEntry{{Key: k, State: s2}}, fans: map[uuid.UUID]scoring.FanState{fan: fs},
		sessions: map[uuid.UUID]sessions.Session{fan: {Start: now, Last: now.Add(time.Minute)}}, routed: map[int32]int64{0: 9}})

	cs := newChunkState()
	for _, chunk := range [][]byte{first, second} {
		if err := decodeChunk(chunk, cs); err != nil {
			t.Fatal(err)
		}
	}
	if !maps.Equal(cs.pairs, map[pipeline.PairKey]scoring.PairState{k: s2, other: s1}) {
		t.Fatalf("pairs after two chunks: %+v", cs.pairs)
	}
	if cs.fans[fan] != fs {
		t.Fatalf("fan state %+v, want %+v", cs.fans[fan], fs)
	}
	if got := cs.sessions[fan]; !got.Start.Equal(now) || !got.Last.Equal(now.Add(time.Minute)) {
		t.Fatalf("session after two chunks: %+v", got)
	}
	if !maps.Equal(cs.routed, map[int32]int64{0: 9, 3: 1 << 40}) {
		t.Fatalf("routed offsets after two chunks: %v", cs.routed)
	}
}

func TestStateChunkCorruptionIsAnError(t *testing.T) {
	good := encodeChunk(chunkState{pairs: map[pipeline.PairKey]scoring.PairState{{Fan: uuid.New(), Performer: "p"}: pairState(t, 5)}})
	for name, b := range map[string][]byte{
		"empty":        {},
		"version":      append([]byte{9}, good[1:]...),
		"truncated":    good[:len(good)-3],
		"unknown kind": append([]byte{chunkVersion, 7}, good[2:]...),
	} {
		if err := decodeChunk(b, newChunkState()); !errors.Is(err, errChunkCorrupt) {
			t.Errorf("%s: err = %v, want errChunkCorrupt", name, err)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add(encodeChunk(chunkState{pairs: map[pipeline.PairKey]scoring.PairState{{Fan: uuid.New(), Performer: "p"}: pairState(f, 61)},
		sessions: map[uuid.UUID]sessions.Session{uuid.New(): {Start: time.Unix(1, 0), Last: time.Unix(2, 0)}},
		routed:   map[int32]int64{2: 12345}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs := newChunkState()
		if decodeChunk(b, cs) != nil {
			return
		}
		// What decodes re-encodes to something that decodes to the same state.
		again := newChunkState()
		if err := decodeChunk(encodeChunk(cs), again); err != nil || !maps.Equal(cs.pairs, again.pairs) || !maps.Equal(cs.fans, again.fans) || len(cs.sessions) != len(again.sessions) || !maps.Equal(cs.routed, again.routed) {
			t.Fatalf("re-encoding changed state: %v", err)
		}
	})
}

package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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
		"empty":              {},
		"version":            append([]byte{9}, good[1:]...),
		"truncated":          good[:len(good)-3],
		"unknown kind":       append([]byte{chunkVersion, 7}, good[2:]...),
		"repeated fan first": append([]byte{chunkVersion, entryPair | sameFan}, good[18:]...),
		// good names its one performer first; a second entry naming the second performer has none to point at.
		"performer out of range": append(append([]byte(nil), good...), append(append([]byte{entryPair}, make([]byte, 16)...), 2, 0)...),
	} {
		if err := decodeChunk(b, newChunkState()); !errors.Is(err, errChunkCorrupt) {
			t.Errorf("%s: err = %v, want errChunkCorrupt", name, err)
		}
	}
}

// Logs written before version 3 spell every performer out and hold pair
// states in their fixed form; they must still load.
func TestStateChunkVersion2StillReads(t *testing.T) {
	fixed := make([]byte, 29) // version 1 of a pair state: 60 seconds listened
	fixed[0] = 1
	binary.LittleEndian.PutUint32(fixed[17:], 60)
	var want scoring.PairState
	if err := want.UnmarshalBinary(fixed); err != nil {
		t.Fatal(err)
	}
	fan := uuid.New()
	b := []byte{chunkV2, entryPair}
	b = append(b, fan[:]...)
	const name = "Björk"
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = append(b, 29)
	b = append(b, fixed...)
	cs := newChunkState()
	if err := decodeChunk(b, cs); err != nil {
		t.Fatal(err)
	}
	if got := cs.pairs[pipeline.PairKey{Fan: fan, Performer: name}]; got != want || len(cs.pairs) != 1 {
		t.Fatalf("pairs %+v, want one with %+v", cs.pairs, want)
	}
}

// The log's size is what Postgres pays for at every checkpoint: a pair with
// a performer already named in the chunk costs a fan id and a few bytes.
func TestStateChunkPairSize(t *testing.T) {
	const n = 1000
	list := make([]pipeline.PairEntry, n)
	st := pairState(t, 30)
	for i := range list {
		list[i] = pipeline.PairEntry{Key: pipeline.PairKey{Fan: uuid.New(), Performer: fmt.Sprintf("perf-%04d", i%10)}, State: st}
	}
	b := encodeChunk(chunkState{pairList: list})
	raw, _ := st.MarshalBinary()
	if per, limit := float64(len(b))/n, float64(1+16+1+1+len(raw))+0.2; per > limit {
		t.Errorf("%.1f bytes per pair, want at most %.1f", per, limit)
	}
	cs := newChunkState()
	if err := decodeChunk(b, cs); err != nil || len(cs.pairs) != n {
		t.Fatalf("decoded %d pairs, %v", len(cs.pairs), err)
	}
	for _, e := range list {
		if cs.pairs[e.Key] != e.State {
			t.Fatalf("pair %v: %+v, want %+v", e.Key, cs.pairs[e.Key], e.State)
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

// A snapshot groups a fan's entries: each fan's id is written once however
// many pairs, facts and sessions it has, and every entry reads back.
func TestStateChunkSnapshotGroupsByFan(t *testing.T) {
	const fans, perFan = 200, 9
	st := pairState(t, 30)
	now := time.Date(2026, 11, 23, 20, 0, 0, 123, time.UTC)
	var fs scoring.FanState
	fs.Apply(events.Event{ID: "g", Source: "s", Subject: "u", Type: events.TypeSocialGraph, Time: now, SocialGraph: &events.SocialGraph{FriendCount: 40}})
	in := chunkState{pairs: map[pipeline.PairKey]scoring.PairState{}, fans: map[uuid.UUID]scoring.FanState{},
		sessions: map[uuid.UUID]sessions.Session{}, routed: map[int32]int64{1: 5}}
	for i := range fans {
		fan := uuid.New()
		for j := range perFan {
			in.pairs[pipeline.PairKey{Fan: fan, Performer: fmt.Sprintf("perf-%d", j)}] = st
		}
		if i%2 == 0 {
			in.fans[fan] = fs
		}
		in.sessions[fan] = sessions.Session{Start: now.Add(time.Duration(i) * time.Second), Last: now.Add(time.Duration(i) * time.Minute)}
	}
	// Fans with a session and nothing else, and one whose session runs backwards in time.
	lone := uuid.New()
	in.sessions[lone] = sessions.Session{Start: now, Last: now.Add(-time.Hour)}
	b := encodeChunk(in)
	out := newChunkState()
	if err := decodeChunk(b, out); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(out.pairs, in.pairs) || !maps.Equal(out.fans, in.fans) || !maps.Equal(out.routed, in.routed) {
		t.Fatalf("decoded %d pairs, %d fans, routed %v; want %d, %d, %v", len(out.pairs), len(out.fans), out.routed, len(in.pairs), len(in.fans), in.routed)
	}
	if !maps.EqualFunc(out.sessions, in.sessions, func(a, b sessions.Session) bool { return a.Start.Equal(b.Start) && a.Last.Equal(b.Last) }) {
		t.Fatalf("sessions differ: %d decoded, %d written", len(out.sessions), len(in.sessions))
	}
	if n := bytes.Count(b, lone[:]); n != 1 {
		t.Errorf("the lone fan's id appears %d times", n)
	}
	for k := range in.pairs {
		if n := bytes.Count(b, k.Fan[:]); n != 1 {
			t.Fatalf("fan %v's id appears %d times, want once", k.Fan, n)
		}
	}
}

// Within a chunk, a pair from pairList replaces the same pair from pairs.
func TestStateChunkPairListWinsWithinAChunk(t *testing.T) {
	k := pipeline.PairKey{Fan: uuid.New(), Performer: "p"}
	old, cur := pairState(t, 30), pairState(t, 90)
	b := encodeChunk(chunkState{pairs: map[pipeline.PairKey]scoring.PairState{k: old, {Fan: uuid.New(), Performer: "q"}: old},
		pairList: []pipeline.PairEntry{{Key: k, State: cur}}})
	cs := newChunkState()
	if err := decodeChunk(b, cs); err != nil {
		t.Fatal(err)
	}
	if cs.pairs[k] != cur {
		t.Fatalf("pair = %+v, want the pairList state %+v", cs.pairs[k], cur)
	}
}

// v3Fixture is a pair state, its encoding, a fan and a session's times, for
// chunks laid out by hand in version 3.
func v3Fixture(t *testing.T) (st scoring.PairState, raw []byte, fan uuid.UUID, start, last time.Time) {
	t.Helper()
	st = pairState(t, 30)
	raw, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Date(2026, 11, 23, 20, 0, 0, 5, time.UTC)
	return st, raw, uuid.New(), start, start.Add(time.Minute)
}

// Logs written before version 4 spell every fan out; they must still load.
func TestStateChunkVersion3StillReads(t *testing.T) {
	st, raw, fan, start, last := v3Fixture(t)
	b := []byte{chunkV3, entryPair}
	b = append(b, fan[:]...)
	b = append(b, 0, 1, 'p', byte(len(raw)))
	b = append(b, raw...)
	b = append(b, entryPair)
	b = append(b, fan[:]...)
	b = append(b, 1, byte(len(raw))) // the same performer, by its place
	b = append(b, raw...)
	b = append(b, entrySession)
	b = append(b, fan[:]...)
	b = binary.AppendVarint(b, start.UnixNano())
	b = binary.AppendVarint(b, last.UnixNano())
	cs := newChunkState()
	if err := decodeChunk(b, cs); err != nil {
		t.Fatal(err)
	}
	if got := cs.pairs[pipeline.PairKey{Fan: fan, Performer: "p"}]; got != st || len(cs.pairs) != 1 {
		t.Fatalf("pairs %+v", cs.pairs)
	}
	if s := cs.sessions[fan]; !s.Start.Equal(start) || !s.Last.Equal(last) {
		t.Fatalf("session %+v, want %v to %v", s, start, last)
	}
	// Version 3 knows no repeated fans.
	if err := decodeChunk([]byte{chunkV3, entryPair | sameFan, 1}, newChunkState()); !errors.Is(err, errChunkCorrupt) {
		t.Fatalf("a version 3 repeated fan: err = %v, want errChunkCorrupt", err)
	}
}

// A delta writes each session before the pair its Pairs names, so a fan with
// a session and a pair beside it spells its id once; every entry reads back,
// including sessions placed past the last pair.
func TestStateChunkDeltaWritesSessionsBesideTheirPairs(t *testing.T) {
	a, b, c, lone := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	st := pairState(t, 30)
	now := time.Date(2026, 11, 23, 20, 0, 0, 123, time.UTC)
	sess := func(min int) sessions.Session {
		return sessions.Session{Start: now, Last: now.Add(time.Duration(min) * time.Minute)}
	}
	in := chunkState{
		pairList: []pipeline.PairEntry{{Key: pipeline.PairKey{Fan: a, Performer: "x"}, State: st},
			{Key: pipeline.PairKey{Fan: b, Performer: "x"}, State: st}, {Key: pipeline.PairKey{Fan: c, Performer: "y"}, State: st}},
		sessionList: []pipeline.SessionEntry{{Fan: a, Session: sess(1), Pairs: 0}, {Fan: c, Session: sess(2), Pairs: 2},
			{Fan: lone, Session: sess(3), Pairs: 3}},
	}
	b1 := encodeChunk(in)
	out := newChunkState()
	if err := decodeChunk(b1, out); err != nil {
		t.Fatal(err)
	}
	want := map[pipeline.PairKey]scoring.PairState{}
	for _, p := range in.pairList {
		want[p.Key] = p.State
	}
	if !maps.Equal(out.pairs, want) {
		t.Fatalf("pairs %v; want %v", out.pairs, want)
	}
	if len(out.sessions) != len(in.sessionList) {
		t.Fatalf("%d sessions decoded; want %d", len(out.sessions), len(in.sessionList))
	}
	for _, s := range in.sessionList {
		if got := out.sessions[s.Fan]; !got.Start.Equal(s.Start) || !got.Last.Equal(s.Last) {
			t.Fatalf("session of %v = %+v; want %+v", s.Fan, got, s.Session)
		}
	}
	for _, f := range []uuid.UUID{a, b, c, lone} {
		if n := bytes.Count(b1, f[:]); n != 1 {
			t.Errorf("fan %v's id appears %d times, want once", f, n)
		}
	}
}

// Written as version 3, for replicas of older releases during a rolling
// upgrade, a chunk is laid out exactly as those releases wrote it: every
// entry spells its fan out, and a session's times are both absolute.
func TestStateChunkWritesVersion3(t *testing.T) {
	st, raw, fan, start, last := v3Fixture(t)
	got := encodeChunkAs(chunkV3, chunkState{pairList: []pipeline.PairEntry{{Key: pipeline.PairKey{Fan: fan, Performer: "p"}, State: st}},
		sessionList: []pipeline.SessionEntry{{Fan: fan, Session: sessions.Session{Start: start, Last: last}}}})
	want := []byte{chunkV3, entrySession}
	want = append(want, fan[:]...)
	want = binary.AppendVarint(want, start.UnixNano())
	want = binary.AppendVarint(want, last.UnixNano())
	want = append(want, entryPair)
	want = append(want, fan[:]...)
	want = append(want, 0, 1, 'p', byte(len(raw)))
	want = append(want, raw...)
	if !bytes.Equal(got, want) {
		t.Fatalf("version 3 delta:\n got %x\nwant %x", got, want)
	}

	// A snapshot in version 3 still groups by fan, but names the fan in every entry.
	in := chunkState{pairs: map[pipeline.PairKey]scoring.PairState{{Fan: fan, Performer: "p"}: st, {Fan: fan, Performer: "q"}: st},
		sessions: map[uuid.UUID]sessions.Session{fan: {Start: start, Last: last}}, fans: map[uuid.UUID]scoring.FanState{}, routed: map[int32]int64{}}
	b := encodeChunkAs(chunkV3, in)
	if b[0] != chunkV3 || bytes.Count(b, fan[:]) != 3 {
		t.Fatalf("version 3 snapshot: version %d, fan id %d times; want 3 and 3", b[0], bytes.Count(b, fan[:]))
	}
	out := newChunkState()
	if err := decodeChunk(b, out); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(out.pairs, in.pairs) || !out.sessions[fan].Last.Equal(last) || !out.sessions[fan].Start.Equal(start) {
		t.Fatalf("version 3 snapshot read back as %v, %v", out.pairs, out.sessions)
	}
}

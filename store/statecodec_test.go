package store

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/index"
	"github.com/crescendo-hq/crescendo/sessions"
)

func TestStateChunksRoundTripAndLaterEntriesWin(t *testing.T) {
	now := time.Date(2026, 11, 23, 20, 0, 0, 123, time.UTC)
	fan := uuid.New()
	var c1, c2 index.Counter
	c1.Add(now, 5*time.Minute)
	c2.Add(now, 9*time.Minute)
	c2.Add(now.Add(-24*time.Hour), 1<<20*time.Second)
	k := index.Key{Fan: fan, Performer: "Beyoncé"}
	other := index.Key{Fan: uuid.New(), Performer: ""}

	first := encodeChunk(map[index.Key]index.Counter{k: c1, other: c1}, map[uuid.UUID]sessions.Session{fan: {Start: now, Last: now}})
	second := encodeChunk(map[index.Key]index.Counter{k: c2}, map[uuid.UUID]sessions.Session{fan: {Start: now, Last: now.Add(time.Minute)}})

	l := map[index.Key]index.Counter{}
	s := map[uuid.UUID]sessions.Session{}
	for _, chunk := range [][]byte{first, second} {
		if err := decodeChunk(chunk, l, s); err != nil {
			t.Fatal(err)
		}
	}
	if !maps.Equal(l, map[index.Key]index.Counter{k: c2, other: c1}) {
		t.Fatalf("listening after two chunks: %+v", l)
	}
	if got := s[fan]; !got.Start.Equal(now) || !got.Last.Equal(now.Add(time.Minute)) {
		t.Fatalf("session after two chunks: %+v", got)
	}
}

func TestStateChunkCorruptionIsAnError(t *testing.T) {
	good := encodeChunk(map[index.Key]index.Counter{{Fan: uuid.New(), Performer: "p"}: {LastDay: 1}}, nil)
	for name, b := range map[string][]byte{
		"empty":        {},
		"version":      append([]byte{9}, good[1:]...),
		"truncated":    good[:len(good)-3],
		"unknown kind": append([]byte{chunkVersion, 7}, good[1:]...),
	} {
		err := decodeChunk(b, map[index.Key]index.Counter{}, map[uuid.UUID]sessions.Session{})
		if !errors.Is(err, errChunkCorrupt) {
			t.Errorf("%s: err = %v, want errChunkCorrupt", name, err)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add(encodeChunk(map[index.Key]index.Counter{{Fan: uuid.New(), Performer: "p"}: {LastDay: 20000, Seconds: [index.WindowDays]uint32{1, 2}}},
		map[uuid.UUID]sessions.Session{uuid.New(): {Start: time.Unix(1, 0), Last: time.Unix(2, 0)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := map[index.Key]index.Counter{}
		s := map[uuid.UUID]sessions.Session{}
		if decodeChunk(b, l, s) != nil {
			return
		}
		// What decodes re-encodes to something that decodes to the same state.
		l2 := map[index.Key]index.Counter{}
		s2 := map[uuid.UUID]sessions.Session{}
		if err := decodeChunk(encodeChunk(l, s), l2, s2); err != nil || !maps.Equal(l, l2) || len(s) != len(s2) {
			t.Fatalf("re-encoding changed state: %v", err)
		}
	})
}

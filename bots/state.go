package bots

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
)

// Rejection codes of purchases the live signals refuse. The caller
// dead-letters the event with the code as its reason.
const (
	RejectDuplicate     = "duplicate_purchase"
	RejectCoordinates   = "coordinates_out_of_range"
	RejectImpossibleAt  = "impossible_timestamp"
	maxSkew             = 5 * time.Minute
	recentPurchaseSlots = 4
)

// epoch is where compact times count from: 2020-01-01 in seconds fits in
// 32 bits until 2156.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Rejected is a purchase the signals refused, with the code to dead-letter it under.
type Rejected struct {
	Code   string
	Detail string
}

func (r *Rejected) Error() string { return r.Code + ": " + r.Detail }

// State is one fan's live bot signals, updated as purchases arrive. It is
// per fan, not per (fan, performer) pair, and 48 bytes in memory and in
// its encoding, so a partition with millions of fans can hold it.
type State struct {
	last       uint32 // compact time of the newest purchase
	lat, lon   float32
	winStart   uint32
	winCount   uint16
	peak       uint16
	impossible uint16
	tooGood    uint16
	fastest    float32 // km/h of the fastest impossible hop
	recent     [recentPurchaseSlots]uint32
	next       uint8 // slot of recent to overwrite next
	known      bool  // a purchase has been seen
}

// Summary is what the live signals show, for Classify.
type Summary struct {
	PeakPurchases int     `json:"peak_purchases"`  // most purchases within one window
	Impossible    int     `json:"impossible_hops"` // hops faster than the top speed
	FastestKmh    float64 `json:"fastest_kmh"`     // the fastest of them
	TooGood       int     `json:"too_good"`        // crossings above a rule's upper threshold
}

// Summary reads the state.
func (s *State) Summary() Summary {
	return Summary{PeakPurchases: int(s.peak), Impossible: int(s.impossible), FastestKmh: float64(s.fastest), TooGood: int(s.tooGood)}
}

func stamp(t time.Time) (uint32, bool) {
	d := t.Sub(epoch) / time.Second
	if d < 0 || d > math.MaxUint32 {
		return 0, false
	}
	return uint32(d), true
}

func idHash(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32() | 1 // 0 marks an empty slot
}

// ObservePurchase folds one ticket purchase, identified by id (source and
// event id), made at at in the venue at lat, lon, into the signals; now is
// the reading clock. A purchase it refuses leaves the state as it was.
//
// Duplicates are recognized among the last few purchases: a partner that
// resends an event does so soon, and keeping every id would make the state
// grow without bound.
func (s *State) ObservePurchase(id string, at time.Time, lat, lon float64, now time.Time, t Thresholds) error {
	if !(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180) {
		return &Rejected{Code: RejectCoordinates, Detail: fmt.Sprintf("venue %g,%g is not on Earth", lat, lon)}
	}
	ts, ok := stamp(at)
	if !ok || at.After(now.Add(maxSkew)) {
		return &Rejected{Code: RejectImpossibleAt, Detail: "purchase time " + at.UTC().Format(time.RFC3339) + " is before 2020 or in the future"}
	}
	h := idHash(id)
	for _, r := range s.recent {
		if r == h {
			return &Rejected{Code: RejectDuplicate, Detail: "purchase " + id + " was already counted"}
		}
	}
	s.recent[s.next] = h
	s.next = (s.next + 1) % recentPurchaseSlots

	t = t.WithDefaults()
	win := uint32(t.PurchaseWindow / time.Second)
	// Fixed windows opened by the first purchase after the last one closed:
	// two counters instead of a list of times. A late purchase before the
	// open window is not counted for the rate.
	switch {
	case !s.known || ts >= s.winStart+win:
		s.winStart, s.winCount = ts, 1
	case ts >= s.winStart:
		s.winCount = min(s.winCount+1, math.MaxUint16)
	}
	s.peak = max(s.peak, s.winCount)

	if s.known && ts >= s.last {
		km := offers.Distance(float64(s.lat), float64(s.lon), lat, lon)
		hours := math.Max(float64(ts-s.last), 60) / 3600 // a minute's resolution: same-second purchases are not infinitely fast
		if speed := km / hours; km >= t.MinTravelKm && speed > t.MaxSpeedKmh {
			s.impossible = min(s.impossible+1, math.MaxUint16)
			s.fastest = float32(math.Max(float64(s.fastest), speed))
		}
	}
	if !s.known || ts >= s.last {
		s.last, s.lat, s.lon = ts, float32(lat), float32(lon)
	}
	s.known = true
	return nil
}

// ObserveTooGood counts a crossing above a rule's upper threshold.
func (s *State) ObserveTooGood() { s.tooGood = min(s.tooGood+1, math.MaxUint16) }

const stateSize = 48

// MarshalBinary encodes the state in 48 bytes.
func (s State) MarshalBinary() ([]byte, error) { return s.AppendBinary(make([]byte, 0, stateSize)) }

// AppendBinary appends the 48-byte encoding to b.
func (s State) AppendBinary(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	b = le.AppendUint32(b, s.last)
	b = le.AppendUint32(b, math.Float32bits(s.lat))
	b = le.AppendUint32(b, math.Float32bits(s.lon))
	b = le.AppendUint32(b, s.winStart)
	b = le.AppendUint16(b, s.winCount)
	b = le.AppendUint16(b, s.peak)
	b = le.AppendUint16(b, s.impossible)
	b = le.AppendUint16(b, s.tooGood)
	b = le.AppendUint32(b, math.Float32bits(s.fastest))
	for _, r := range s.recent {
		b = le.AppendUint32(b, r)
	}
	known := byte(0)
	if s.known {
		known = 1
	}
	return append(b, s.next, known, 0, 0), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) != stateSize || b[44] >= recentPurchaseSlots || b[45] > 1 {
		return errors.New("bots: not a bot state")
	}
	le := binary.LittleEndian
	*s = State{
		last: le.Uint32(b[0:]), lat: math.Float32frombits(le.Uint32(b[4:])), lon: math.Float32frombits(le.Uint32(b[8:])),
		winStart: le.Uint32(b[12:]), winCount: le.Uint16(b[16:]), peak: le.Uint16(b[18:]),
		impossible: le.Uint16(b[20:]), tooGood: le.Uint16(b[22:]), fastest: math.Float32frombits(le.Uint32(b[24:])),
		next: b[44], known: b[45] == 1,
	}
	for i := range s.recent {
		s.recent[i] = le.Uint32(b[28+4*i:])
	}
	return nil
}

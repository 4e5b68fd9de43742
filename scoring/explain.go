package scoring

import (
	"slices"
	"strconv"
	"time"
)

// Contribution is what one event added to one pair's index. Apply returns
// them instead of keeping them, so that the in-memory state stays small;
// the caller stores them, and explanations (F6) are built from storage.
type Contribution struct {
	Signal Signal `json:"signal"`
	// Points are the weighted points at At, before any decay.
	Points float64 `json:"points"`
	// EventID is "source/id" of the event that earned the points.
	EventID string `json:"event_id"`
	// At is the event's time; decay runs from here.
	At time.Time `json:"at"`
	// Detail says why, for people: `"love" near "aurora lane"`.
	Detail string `json:"detail,omitempty"`
}

// FanFact is the per-fan fact behind the human point: the friend count of
// the latest social_graph event. FanState.Apply returns it for the caller to
// store, since FanState itself keeps no event ids.
type FanFact struct {
	FriendCount int64     `json:"friend_count"`
	EventID     string    `json:"event_id"`
	At          time.Time `json:"at"`
}

// Explanation breaks a pair's index down by signal and by event (F6).
type Explanation struct {
	// At is the time the values are decayed to.
	At time.Time `json:"at"`
	// Total is the index at At: the sum of Signals' Points.
	Total float64 `json:"total"`
	// Signals has one line per signal that contributed, in Signals() order.
	Signals []SignalTotal `json:"signals"`
	// Items are the contributions, newest first, each with its value at At.
	Items []Item `json:"items"`
}

// SignalTotal is one signal's share of an index.
type SignalTotal struct {
	Signal Signal `json:"signal"`
	// Points is the signal's share at the explanation's time, decayed.
	Points float64 `json:"points"`
	// Earned is what the contributions were worth when they happened.
	Earned float64 `json:"earned"`
	// Count is how many contributions there were.
	Count int `json:"count"`
}

// Item is one contribution with its decayed value.
type Item struct {
	Contribution
	// Value is Points decayed from At to the explanation's time.
	Value float64 `json:"value"`
}

// Explain breaks down the index of a pair at time at from the pair's stored
// contributions and the fan's latest FanFact (nil if none), under profile p.
//
// Its total equals Scorer.Index for the same pair up to float32 rounding,
// for any at not before the pair's newest event: both decay each point from
// its own event time. A contribution later than at is taken at full value,
// as Value does. Contributions carry the weights of the profile they were
// earned under; a changed profile applies to new events, and rescoring old
// ones means replaying them.
func Explain(p Profile, contribs []Contribution, fan *FanFact, at time.Time) Explanation {
	ex := Explanation{At: at, Items: make([]Item, 0, len(contribs)+1)}
	now := stamp(at)
	for _, c := range contribs {
		ex.Items = append(ex.Items, Item{Contribution: c, Value: c.Points * decay(p.HalfLife, stamp(c.At), now)})
	}
	if fan != nil && fan.FriendCount >= int64(p.MinFriends) && p.Weights.Human > 0 {
		ex.Items = append(ex.Items, Item{
			Contribution: Contribution{
				Signal: SignalHuman, Points: p.Weights.Human, EventID: fan.EventID, At: fan.At,
				Detail: "friend_count " + strconv.FormatInt(fan.FriendCount, 10) + " ≥ " + strconv.Itoa(p.MinFriends),
			},
			Value: p.Weights.Human, // the human point states what the account is now: no decay
		})
	}
	slices.SortStableFunc(ex.Items, func(a, b Item) int { return b.At.Compare(a.At) })

	for _, sig := range Signals() {
		line := SignalTotal{Signal: sig}
		for _, it := range ex.Items {
			if it.Signal == sig {
				line.Points += it.Value
				line.Earned += it.Points
				line.Count++
			}
		}
		if line.Count > 0 {
			ex.Signals = append(ex.Signals, line)
			ex.Total += line.Points
		}
	}
	return ex
}

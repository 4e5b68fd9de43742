package bots

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Class is what bot detection concluded about an account (F14).
type Class string

// The classes of F14. Suspect accounts keep their offers and places but are
// marked for review; automated ones never get priority.
const (
	Human     Class = "human"
	Suspect   Class = "suspect"
	Automated Class = "automated"
)

// Classes lists the classes in order of increasing doubt.
func Classes() []Class { return []Class{Human, Suspect, Automated} }

// Valid reports whether c is one of the classes.
func (c Class) Valid() bool { return c == Human || c == Suspect || c == Automated }

// Signal names one kind of evidence (F13). Values are stable: they are stored.
type Signal string

// The signals of F13.
const (
	SignalLowFriends       Signal = "low_friends"
	SignalPurchaseRate     Signal = "purchase_rate"
	SignalImpossibleTravel Signal = "impossible_travel"
	SignalFastReactions    Signal = "fast_reactions"
	SignalTooGood          Signal = "index_above_upper_threshold"
	SignalRing             Signal = "ring"
	SignalWatchList        Signal = "reseller_watch_list"
	SignalOverride         Signal = "marketer_override"
)

// Thresholds are the bot-detection settings of a scoring profile.
type Thresholds struct {
	// MinFriends is taken from the profile's min_friends (the human point).
	MinFriends int `json:"-"`
	// MaxPurchases tickets purchases within PurchaseWindow are what a fan
	// may make; more is the purchase-rate signal.
	MaxPurchases   int           `json:"max_purchases"`
	PurchaseWindow time.Duration `json:"purchase_window"`
	// MaxSpeedKmh is the plausible top speed between two purchase
	// locations (a airliner's); MinTravelKm ignores hops shorter than it,
	// which are one city and within the noise of venue coordinates.
	MaxSpeedKmh float64 `json:"max_speed_kmh"`
	MinTravelKm float64 `json:"min_travel_km"`
	// HumanReactionMs is the fastest a person reads an offer and redeems
	// it; a fan whose median reaction, over at least MinReactions offers,
	// is faster reacts like software.
	HumanReactionMs int64 `json:"human_reaction_ms"`
	MinReactions    int   `json:"min_reactions"`
	// RingMinSize and RingInsideShare define a ring: a community of at
	// least RingMinSize accounts whose ties lie inside it at least at this
	// share, and whose members are tied to at least RingDensity of each other.
	RingMinSize     int     `json:"ring_min_size"`
	RingInsideShare float64 `json:"ring_inside_share"`
	RingDensity     float64 `json:"ring_density"`
	// SuspectPoints and AutomatedPoints are the evidence points from which
	// an account is suspect or automated; each signal's points are in Points.
	SuspectPoints   int `json:"suspect_points"`
	AutomatedPoints int `json:"automated_points"`
}

// Points are what each signal weighs towards a class. One weak signal (few
// friends, one index above the upper threshold) never condemns an account
// alone; the behaviour of software (reaction times, rings) does.
var Points = map[Signal]int{
	SignalLowFriends:       1,
	SignalTooGood:          1,
	SignalPurchaseRate:     2,
	SignalImpossibleTravel: 2,
	SignalFastReactions:    3,
	SignalRing:             3,
	SignalWatchList:        3,
}

// DefaultThresholds are the settings of a new profile.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MinFriends: 25, MaxPurchases: 6, PurchaseWindow: 24 * time.Hour,
		MaxSpeedKmh: 1000, MinTravelKm: 100, HumanReactionMs: 1500, MinReactions: 3,
		RingMinSize: 5, RingInsideShare: 0.85, RingDensity: 0.5,
		SuspectPoints: 2, AutomatedPoints: 3,
	}
}

// WithDefaults fills zero settings from DefaultThresholds.
func (t Thresholds) WithDefaults() Thresholds {
	d := DefaultThresholds()
	t.MaxPurchases = cmp.Or(t.MaxPurchases, d.MaxPurchases)
	t.PurchaseWindow = cmp.Or(t.PurchaseWindow, d.PurchaseWindow)
	t.MaxSpeedKmh = cmp.Or(t.MaxSpeedKmh, d.MaxSpeedKmh)
	t.MinTravelKm = cmp.Or(t.MinTravelKm, d.MinTravelKm)
	t.HumanReactionMs = cmp.Or(t.HumanReactionMs, d.HumanReactionMs)
	t.MinReactions = cmp.Or(t.MinReactions, d.MinReactions)
	t.RingMinSize = cmp.Or(t.RingMinSize, d.RingMinSize)
	t.RingInsideShare = cmp.Or(t.RingInsideShare, d.RingInsideShare)
	t.RingDensity = cmp.Or(t.RingDensity, d.RingDensity)
	t.SuspectPoints = cmp.Or(t.SuspectPoints, d.SuspectPoints)
	t.AutomatedPoints = cmp.Or(t.AutomatedPoints, d.AutomatedPoints)
	return t
}

// Validate reports every setting out of range, each prefixed with its name.
func (t Thresholds) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("bots.%s: "+format, append([]any{name}, args...)...))
	}
	if t.MaxPurchases < 0 {
		bad("max_purchases", "must be 0 or more; got %d", t.MaxPurchases)
	}
	if t.PurchaseWindow < 0 {
		bad("purchase_window", "must be 0 or more; got %s", t.PurchaseWindow)
	}
	if t.MaxSpeedKmh < 0 || t.MaxSpeedKmh > 40000 {
		bad("max_speed_kmh", "must be 0 to 40000; got %g", t.MaxSpeedKmh)
	}
	if t.MinTravelKm < 0 {
		bad("min_travel_km", "must be 0 or more; got %g", t.MinTravelKm)
	}
	if t.HumanReactionMs < 0 || t.MinReactions < 0 || t.RingMinSize < 0 {
		bad("human_reaction_ms", "human_reaction_ms, min_reactions and ring_min_size must be 0 or more")
	}
	if t.RingInsideShare < 0 || t.RingInsideShare > 1 || t.RingDensity < 0 || t.RingDensity > 1 {
		bad("ring_inside_share", "ring_inside_share and ring_density must be 0 to 1")
	}
	if t.SuspectPoints < 0 || t.AutomatedPoints < 0 || (t.AutomatedPoints > 0 && t.SuspectPoints > t.AutomatedPoints) {
		bad("suspect_points", "must be 0 or more and at most automated_points")
	}
	return errors.Join(errs...)
}

// Reason is one signal that counted against an account, with its evidence.
type Reason struct {
	Signal   Signal `json:"signal"`
	Points   int    `json:"points"`
	Evidence string `json:"evidence"`
}

// Classification is the class of an account and why.
type Classification struct {
	Class   Class    `json:"class"`
	Points  int      `json:"points"`
	Reasons []Reason `json:"reasons"`
	// Agent is set when the fan has declared agents: their speed was not counted.
	Agent bool `json:"declared_agent,omitempty"`
}

// Reaction is one offer's reaction time: from sending to redemption.
type Reaction struct {
	Ms int64
	// ByAgent is set when a declared agent redeemed the offer.
	ByAgent bool
}

// ReactionStats summarize a fan's reaction times, judged on the distribution.
type ReactionStats struct {
	N        int   `json:"n"`         // reactions by the fan themself
	MedianMs int64 `json:"median_ms"` // of those
	Fast     int   `json:"fast"`      // of those faster than HumanReactionMs
}

// SummarizeReactions computes the statistics over the reactions the fan made
// themself: a declared agent's speed is the agent's, never evidence.
func SummarizeReactions(rs []Reaction, t Thresholds) ReactionStats {
	ms := make([]int64, 0, len(rs))
	var s ReactionStats
	for _, r := range rs {
		if r.ByAgent || r.Ms < 0 {
			continue
		}
		ms = append(ms, r.Ms)
		if r.Ms < t.HumanReactionMs {
			s.Fast++
		}
	}
	s.N = len(ms)
	if s.N > 0 {
		slices.Sort(ms)
		s.MedianMs = ms[s.N/2]
		if s.N%2 == 0 {
			s.MedianMs = (ms[s.N/2-1] + ms[s.N/2]) / 2
		}
	}
	return s
}

// RingEvidence describes the community an account belongs to.
type RingEvidence struct {
	Size        int     `json:"size"`
	InsideShare float64 `json:"inside_share"`
	Density     float64 `json:"density"`
}

// Evidence is everything known about one account.
type Evidence struct {
	// FriendCount is the latest friend count; FriendsKnown is false before
	// any social graph, which is no evidence either way.
	FriendCount  int64
	FriendsKnown bool
	Live         Summary
	Reactions    ReactionStats
	Ring         *RingEvidence
	Watched      bool
	WatchNote    string
	// DeclaredAgent is set when the fan has a live agent credential.
	DeclaredAgent bool
}

// Classify weighs the evidence under t. It is deterministic: the same
// evidence always gives the same class and reasons, in signal order.
func Classify(e Evidence, t Thresholds) Classification {
	t = t.WithDefaults()
	var c Classification
	add := func(s Signal, evidence string) {
		p := Points[s]
		c.Points += p
		c.Reasons = append(c.Reasons, Reason{Signal: s, Points: p, Evidence: evidence})
	}
	if e.FriendsKnown && e.FriendCount < int64(t.MinFriends) {
		add(SignalLowFriends, "friend_count "+strconv.FormatInt(e.FriendCount, 10)+" < "+strconv.Itoa(t.MinFriends))
	}
	if e.Live.PeakPurchases > t.MaxPurchases && t.MaxPurchases > 0 {
		add(SignalPurchaseRate, fmt.Sprintf("%d purchases within %s (at most %d)", e.Live.PeakPurchases, t.PurchaseWindow, t.MaxPurchases))
	}
	if e.Live.Impossible > 0 {
		add(SignalImpossibleTravel, fmt.Sprintf("%d impossible hops, fastest %.0f km/h (top %.0f)", e.Live.Impossible, e.Live.FastestKmh, t.MaxSpeedKmh))
	}
	if r := e.Reactions; r.N >= t.MinReactions && r.MedianMs < t.HumanReactionMs {
		add(SignalFastReactions, fmt.Sprintf("median reaction %d ms over %d offers (%d faster than %d ms)", r.MedianMs, r.N, r.Fast, t.HumanReactionMs))
	}
	if e.Live.TooGood > 0 {
		add(SignalTooGood, fmt.Sprintf("index above a rule's upper threshold %d times", e.Live.TooGood))
	}
	if r := e.Ring; r != nil {
		add(SignalRing, fmt.Sprintf("community of %d accounts, %.0f%% of ties inside, density %.2f", r.Size, 100*r.InsideShare, r.Density))
	}
	if e.Watched {
		add(SignalWatchList, cmp.Or(e.WatchNote, "on the reseller watch list"))
	}
	c.Agent = e.DeclaredAgent
	c.Class = classOf(c.Points, t)
	return c
}

// Combine joins classifications of disjoint evidence — the consumer's live
// signals and the scheduled job's batch signals — into one: reasons add up
// and the class is judged on their sum under t.
func Combine(t Thresholds, parts ...Classification) Classification {
	t = t.WithDefaults()
	var c Classification
	for _, p := range parts {
		c.Points += p.Points
		c.Reasons = append(c.Reasons, p.Reasons...)
		c.Agent = c.Agent || p.Agent
	}
	c.Class = classOf(c.Points, t)
	return c
}

// Override replaces c's class with a marketer's, keeping the evidence and
// adding the override as the first reason.
func Override(c Classification, class Class, note string) Classification {
	c.Class = class
	c.Reasons = append([]Reason{{Signal: SignalOverride, Evidence: note}}, c.Reasons...)
	return c
}

func classOf(points int, t Thresholds) Class {
	switch {
	case t.AutomatedPoints > 0 && points >= t.AutomatedPoints:
		return Automated
	case t.SuspectPoints > 0 && points >= t.SuspectPoints:
		return Suspect
	}
	return Human
}

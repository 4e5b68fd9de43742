package offers

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
	"github.com/google/uuid"
)

// Show is what a rule knows of its show.
type Show struct {
	ID                     string
	StartsAt               time.Time
	VenueLat, VenueLon     float64
	OnsaleStart, OnsaleEnd time.Time // zero: not set
}

// Fan is what a rule knows of a fan at a crossing.
type Fan struct {
	ID       uuid.UUID
	TimeZone *time.Location // nil: UTC
	// HasHome tells whether HomeLat and HomeLon are known.
	HasHome          bool
	HomeLat, HomeLon float64
	FriendCount      int64 // -1: unknown
	// Automated is set for an account bot detection classified as
	// automated (F14): it never gets a priority offer.
	Automated bool
	// AutomatedWhy is the classification's reasons, recorded with the decision.
	AutomatedWhy string
}

// Reason says why a fan whose index crossed a tier got no offer (F10), or
// marks a fan held out; the funnel and the dry run report them.
type Reason string

// Reasons a crossing issues no offer.
const (
	ReasonNoLiveSession  Reason = "no_live_session"
	ReasonTooGood        Reason = "too_good_to_be_human"
	ReasonAutomated      Reason = "automated_account"
	ReasonBeforeWindow   Reason = "before_window"
	ReasonAfterWindow    Reason = "after_window"
	ReasonOffSchedule    Reason = "outside_schedule"
	ReasonTooFar         Reason = "too_far_from_venue"
	ReasonNoHome         Reason = "home_location_unknown"
	ReasonCondition      Reason = "condition_false"
	ReasonConditionError Reason = "condition_error"
	ReasonHoldout        Reason = "holdout"
	ReasonPerFanCap      Reason = "per_fan_cap"
	ReasonCooldown       Reason = "cooldown"
	ReasonQuietHours     Reason = "quiet_hours"
	// Decided by the database when the offer is written.
	ReasonBudget         Reason = "budget_exhausted"
	ReasonCodesExhausted Reason = "presale_codes_exhausted"
)

// Decision records that a crossing of a rule's tier issued no offer, and why.
type Decision struct {
	Key
	RuleVersion int
	Reason      Reason
	Detail      string
	Index       float64
	EventID     string
	At          time.Time
}

// Program is a rule compiled for evaluation: its show resolved and its
// condition parsed, checked and planned once.
type Program struct {
	Rule Rule
	Show Show
	cond cel.Program
	// quiet hours as offsets from local midnight, parsed once
	quietStart, quietEnd time.Duration
	schedule             *activeWindows // nil: active all through the window
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	obj := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("fan", obj),
		cel.Variable("session", obj),
		cel.Variable("index", obj),
		cel.Variable("show", obj),
		cel.Variable("event", obj),
		cel.Variable("now", cel.TimestampType),
	)
})

// ConditionVariables documents what a condition can use.
const ConditionVariables = `fan.id, fan.time_zone, fan.has_home, fan.home_lat, fan.home_lon, fan.friend_count (-1 unknown);
session.live, session.minutes; index.value, index.tier;
show.id, show.starts_at, show.days_until, show.distance_km (from the fan's home; -1 unknown);
event.type, event.source, event.id, event.time; now`

// Compile validates r against its show and compiles its condition. Every
// problem is listed, each prefixed with its field path; condition errors
// carry line and column.
func Compile(r Rule, s Show) (*Program, error) {
	errs := []error{r.Validate()}
	if s.ID != r.ShowID {
		errs = append(errs, fmt.Errorf("show_id: show %q is not the rule's", s.ID))
	}
	p := &Program{Rule: r, Show: s}
	if q := r.QuietHours; q != nil {
		p.quietStart, _ = clock(q.Start)
		p.quietEnd, _ = clock(q.End)
	}
	if r.Schedule != nil {
		p.schedule, _ = r.Schedule.compile() // Validate reported its errors
	}
	if strings.TrimSpace(r.Condition) != "" {
		prg, err := compileCondition(r.Condition)
		if err != nil {
			errs = append(errs, err)
		}
		p.cond = prg
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func compileCondition(src string) (cel.Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("condition: building environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var errs []error
		for _, e := range iss.Errors() {
			loc := e.Location
			errs = append(errs, fmt.Errorf("condition: %d:%d: %s", loc.Line(), loc.Column()+1, e.Message))
		}
		return nil, errors.Join(errs...)
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("condition: must be true or false, not %s", t)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	return prg, nil
}

// IssuedAt reports when an offer for k was issued, if it was.
type IssuedAt func(k Key) (time.Time, bool)

// Crossing is the context of an index change during which offers may be
// issued. Pass the same *Crossing to every rule it concerns: what conditions
// read of it is built once.
type Crossing struct {
	Fan          Fan
	Index        float64
	SessionLive  bool
	SessionStart time.Time
	EventID      string // "source/id"
	EventType    string
	EventTime    time.Time
	// Now is the time the rule judges by (windows, quiet hours, cooldowns):
	// the event's time, so a replay judges as the live run did.
	Now time.Time
	// IssueAt stamps offers and starts their lifetime: the wall clock when
	// live, the event's time in a replay. Zero: Now.
	IssueAt time.Time

	// What conditions read, as CEL values built on first use: converting a
	// Go map costs more than the condition does.
	vars   map[string]ref.Val // fan, session, event
	shows  map[string]ref.Val // by show id: rules of a performer share shows
	byTier []ref.Val          // index, by tier, for the index idxFor
	idxFor float64
	act    activation // reused by each evaluation: no allocation per rule
}

func (c *Crossing) shared() map[string]ref.Val {
	if c.vars != nil {
		return c.vars
	}
	tz := "UTC"
	if c.Fan.TimeZone != nil {
		tz = c.Fan.TimeZone.String()
	}
	minutes := 0.0
	if c.SessionLive && !c.SessionStart.IsZero() {
		minutes = c.Now.Sub(c.SessionStart).Minutes()
	}
	c.vars = map[string]ref.Val{
		"fan": celValue(map[string]any{"id": c.Fan.ID.String(), "time_zone": tz, "has_home": c.Fan.HasHome,
			"friend_count": c.Fan.FriendCount, "home_lat": c.Fan.HomeLat, "home_lon": c.Fan.HomeLon}),
		"session": celValue(map[string]any{"live": c.SessionLive, "minutes": minutes}),
		"event":   celValue(map[string]any{"type": c.EventType, "id": c.EventID, "source": sourceOf(c.EventID), "time": c.EventTime}),
	}
	return c.vars
}

// activation resolves a condition's variables for one rule and tier from
// values the crossing builds once and its rules share.
type activation struct {
	c    *Crossing
	p    *Program
	dist float64
	tier int64
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "fan", "session", "event":
		return a.c.shared()[name], true
	case "index":
		c := a.c
		if c.idxFor != c.Index { // one crossing serves several pairs, each with its index
			c.byTier, c.idxFor = c.byTier[:0], c.Index
		}
		for int64(len(c.byTier)) <= a.tier {
			c.byTier = append(c.byTier, nil)
		}
		if c.byTier[a.tier] == nil {
			c.byTier[a.tier] = celValue(map[string]any{"value": c.Index, "tier": a.tier})
		}
		return c.byTier[a.tier], true
	case "show":
		c, s := a.c, &a.p.Show
		if v, ok := c.shows[s.ID]; ok {
			return v, true
		}
		if c.shows == nil {
			c.shows = make(map[string]ref.Val, 1)
		}
		v := celValue(map[string]any{"id": s.ID, "starts_at": s.StartsAt, "days_until": s.StartsAt.Sub(c.Now).Hours() / 24, "distance_km": a.dist})
		c.shows[s.ID] = v
		return v, true
	case "now":
		return a.c.Now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func celValue(m map[string]any) ref.Val { return types.DefaultTypeAdapter.NativeToValue(m) }

// Reaches reports whether index reaches the rule's first tier. Below it
// Evaluate grants and decides nothing, so a caller can skip describing the
// crossing: most events move an index that is nowhere near a threshold.
func (p *Program) Reaches(index float64) bool {
	return len(p.Rule.Tiers) > 0 && index >= p.Rule.Tiers[0].Threshold
}

// Evaluate returns the offers p grants for c, one per tier the index has
// reached that the fan does not hold yet, and a decision for each such tier
// that gets none. Tiers below the index that were already issued say nothing.
func (p *Program) Evaluate(c *Crossing, issued IssuedAt, newID func() uuid.UUID) ([]Offer, []Decision) {
	r := &p.Rule
	var out []Offer
	var decided []Decision
	for i, t := range r.Tiers {
		if c.Index < t.Threshold {
			break
		}
		k := Key{Fan: c.Fan.ID, Rule: r.ID, Tier: i + 1}
		if _, ok := issued(k); ok {
			continue
		}
		reason, detail := p.check(c, issued, i+1)
		if reason != "" {
			decided = append(decided, Decision{Key: k, RuleVersion: r.Version, Reason: reason, Detail: detail,
				Index: c.Index, EventID: c.EventID, At: c.Now})
			if reason == ReasonHoldout {
				break // a held-out fan is held out of every tier
			}
			continue
		}
		at := c.IssueAt
		if at.IsZero() {
			at = c.Now
		}
		o := Offer{
			ID: newID(), FanID: c.Fan.ID, RuleID: r.ID, RuleVersion: r.Version, Tier: i + 1,
			// Offers share the tier's perks: neither is changed once made.
			PerformerID: r.PerformerID, ShowID: r.ShowID, Perks: t.Perks,
			IndexValue: c.Index, EventID: c.EventID, IssuedAt: at, ExpiresAt: at.Add(r.Lifetime),
		}
		if r.QuietHours != nil {
			if end, quiet := p.quiet(c.Now, c.Fan.TimeZone); quiet {
				o.DeliverAfter = end // hold: the skip mode returned a reason above
			}
		}
		out = append(out, o)
	}
	return out, decided
}

// check applies the rule's gates in a fixed order, cheapest and most telling
// first, and returns the first that fails.
func (p *Program) check(c *Crossing, issued IssuedAt, tier int) (Reason, string) {
	r := &p.Rule
	switch {
	case c.Fan.Automated:
		return ReasonAutomated, c.Fan.AutomatedWhy
	case !c.SessionLive:
		return ReasonNoLiveSession, ""
	case r.UpperThreshold > 0 && c.Index > r.UpperThreshold:
		return ReasonTooGood, fmt.Sprintf("index %.1f above %.1f", c.Index, r.UpperThreshold)
	}
	from, until := p.window()
	if !from.IsZero() && c.Now.Before(from) {
		return ReasonBeforeWindow, "offers open " + from.Format(time.RFC3339)
	}
	if !until.IsZero() && !c.Now.Before(until) {
		return ReasonAfterWindow, "offers closed " + until.Format(time.RFC3339)
	}
	if p.schedule != nil {
		if on, next := p.schedule.active(c.Now); !on {
			return ReasonOffSchedule, "the rule's schedule opens next at " + next.Format(time.RFC3339)
		}
	}
	dist := -1.0
	if c.Fan.HasHome {
		dist = Distance(c.Fan.HomeLat, c.Fan.HomeLon, p.Show.VenueLat, p.Show.VenueLon)
	}
	if r.MaxDistanceKm > 0 {
		if dist < 0 {
			return ReasonNoHome, ""
		}
		if dist > r.MaxDistanceKm {
			return ReasonTooFar, fmt.Sprintf("%.0f km from the venue, at most %.0f", dist, r.MaxDistanceKm)
		}
	}
	if r.Holdout > 0 && heldOut(c.Fan.ID, r.ID, r.Holdout) {
		return ReasonHoldout, ""
	}
	if r.PerFanCap > 0 || r.Cooldown > 0 {
		n, last := 0, time.Time{}
		for j := range r.Tiers {
			if at, ok := issued(Key{Fan: c.Fan.ID, Rule: r.ID, Tier: j + 1}); ok {
				n++
				if at.After(last) {
					last = at
				}
			}
		}
		if r.PerFanCap > 0 && n >= r.PerFanCap {
			return ReasonPerFanCap, fmt.Sprintf("%d offers already", n)
		}
		if r.Cooldown > 0 && n > 0 && c.Now.Sub(last) < r.Cooldown {
			return ReasonCooldown, "last offer " + last.Format(time.RFC3339)
		}
	}
	if q := r.QuietHours; q != nil && q.Mode == QuietSkip {
		if _, quiet := p.quiet(c.Now, c.Fan.TimeZone); quiet {
			return ReasonQuietHours, ""
		}
	}
	if p.cond != nil {
		c.act = activation{c: c, p: p, dist: dist, tier: int64(tier)}
		val, _, err := p.cond.Eval(&c.act)
		if err != nil {
			return ReasonConditionError, err.Error()
		}
		if ok, isBool := val.Value().(bool); !isBool || !ok {
			return ReasonCondition, ""
		}
	}
	return "", ""
}

// window is when the rule issues offers: its own bounds, else until the
// show's general on-sale ends (or the show starts).
func (p *Program) window() (from, until time.Time) {
	from, until = p.Rule.IssueFrom, p.Rule.IssueUntil
	if until.IsZero() {
		until = p.Show.OnsaleEnd
	}
	if until.IsZero() {
		until = p.Show.StartsAt
	}
	return from, until
}

func sourceOf(eventID string) string {
	s, _, _ := strings.Cut(eventID, "/")
	return s
}

// heldOut reports whether fan falls in the rule's holdout share: a stable
// hash, so the same fan stays held out of the same rule across replicas,
// restarts and dry runs, and differs between rules.
func heldOut(fan uuid.UUID, rule string, share float64) bool {
	h := fnv.New64a()
	h.Write(fan[:])
	h.Write([]byte(rule))
	return float64(h.Sum64()>>11)/float64(1<<53) < share
}

// Distance is the great-circle distance in kilometres between two points.
func Distance(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0088
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

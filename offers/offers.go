// Package offers decides when a fan earns a time-limited offer and what it carries.
// It is plain Go: rules and offers in, decisions out; storage and delivery live elsewhere.
package offers

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Channel is a way to reach a fan.
type Channel string

// The delivery channels of F16.
const (
	ChannelPush  Channel = "push"
	ChannelSMS   Channel = "sms"
	ChannelEmail Channel = "email"
)

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool {
	return c == ChannelPush || c == ChannelSMS || c == ChannelEmail
}

// Tier is one threshold of a rule and the perks it unlocks.
type Tier struct {
	Threshold float64 `json:"threshold"`
	// Perks are "presale", "vip_upgrade", "backstage", "meet_and_greet", or
	// "section:<name>", "discount:<percent>", "merch:<item>".
	Perks []string `json:"perks"`
	// Inventory is how many offers of this tier can be redeemed; 0: no limit.
	Inventory int `json:"inventory,omitempty"`
}

// Quiet-hours modes: hold an offer until the quiet hours end, or skip it.
const (
	QuietHold = "hold"
	QuietSkip = "skip"
)

// QuietHours are local hours in the fan's time zone when offers are not sent.
type QuietHours struct {
	Start string `json:"start"` // "22:00"
	End   string `json:"end"`   // "08:00"; before Start: the hours span midnight
	Mode  string `json:"mode"`  // hold or skip
}

func clock(s string) (time.Duration, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, true
}

// quiet reports whether now falls in the rule's quiet hours in loc, and when they end.
func (p *Program) quiet(now time.Time, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	start, end := p.quietStart, p.quietEnd
	if start == end {
		return time.Time{}, false
	}
	local := now.In(loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	since := local.Sub(midnight)
	switch {
	case start < end && since >= start && since < end:
		return midnight.Add(end), true
	case start > end && since >= start:
		return time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, loc).Add(end), true
	case start > end && since < end:
		return midnight.Add(end), true
	}
	return time.Time{}, false
}

// Rule is a marketer's offer rule (F9). Thresholds are index points under
// the performer's scoring profile.
type Rule struct {
	ID          string
	Version     int // set by the store on every change
	Name        string
	PerformerID string
	ShowID      string
	// ProfileID, when set, names the scoring profile the thresholds are
	// meant in; the rule is only evaluated while the performer is scored
	// under it, so a profile change cannot silently shift its meaning.
	ProfileID string
	Tiers     []Tier
	// UpperThreshold: an index above it is "too good to be human" and gets
	// no priority; 0: none.
	UpperThreshold float64
	// Condition is a CEL expression over fan, session, index, show, event
	// and now (see ConditionVariables); empty: always true.
	Condition string
	Channels  []Channel
	Lifetime  time.Duration
	// PerFanCap bounds the offers one fan gets under the rule across its
	// tiers; Cooldown is the least time between two of them. 0: no bound.
	PerFanCap int
	Cooldown  time.Duration
	// Budget bounds the offers the rule issues in all; 0: no bound.
	Budget     int
	QuietHours *QuietHours
	// MaxDistanceKm admits only fans whose home is within this great-circle
	// distance of the venue; 0: anywhere.
	MaxDistanceKm float64
	// Holdout is the share of eligible fans (0 to 0.5) who get no offer, a
	// stable random sample, so the funnel can show what the offers cause.
	Holdout float64
	// IssueFrom and IssueUntil bound when offers are issued; by default
	// until the show's general on-sale ends, or the show starts.
	IssueFrom, IssueUntil time.Time
	// Templates are the rule's own messages (F19); nil: the built-in ones.
	Templates *Templates
	// Schedule, when set, says when the rule is active within its window.
	Schedule *Schedule
}

var perkKinds = map[string]bool{"presale": false, "vip_upgrade": false, "backstage": false, "meet_and_greet": false,
	"section": true, "discount": true, "merch": true}

// Validate reports every problem with r, each prefixed with its field path.
func (r Rule) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.ID == "" {
		add("id: required")
	} else if len(r.ID) > 128 || strings.ContainsAny(r.ID, "/ \t\n") {
		add("id: at most 128 bytes, without slashes or spaces")
	}
	if r.PerformerID == "" {
		add("performer_id: required")
	}
	if r.ShowID == "" {
		add("show_id: required")
	}
	if len(r.Tiers) == 0 {
		add("tiers: at least one tier is required")
	}
	for i, t := range r.Tiers {
		if t.Threshold <= 0 {
			add("tiers[%d].threshold: must be positive", i)
		}
		if i > 0 && t.Threshold <= r.Tiers[i-1].Threshold {
			add("tiers[%d].threshold: must be above tiers[%d]", i, i-1)
		}
		if len(t.Perks) == 0 {
			add("tiers[%d].perks: at least one perk is required", i)
		}
		for j, perk := range t.Perks {
			kind, detail, hasDetail := strings.Cut(perk, ":")
			needs, known := perkKinds[kind]
			switch {
			case !known:
				add("tiers[%d].perks[%d]: unknown perk %q (presale, vip_upgrade, backstage, meet_and_greet, section:<name>, discount:<percent>, merch:<item>)", i, j, kind)
			case needs && (!hasDetail || strings.TrimSpace(detail) == ""):
				add("tiers[%d].perks[%d]: %s needs a value, as in %s:<value>", i, j, kind, kind)
			case !needs && hasDetail:
				add("tiers[%d].perks[%d]: %s takes no value", i, j, kind)
			case kind == "discount":
				if n, err := strconv.ParseFloat(strings.TrimSuffix(detail, "%"), 64); err != nil || n <= 0 || n > 100 {
					add("tiers[%d].perks[%d]: discount must be a percentage between 0 and 100", i, j)
				}
			}
		}
		if t.Inventory < 0 {
			add("tiers[%d].inventory: must not be negative", i)
		}
	}
	if r.UpperThreshold < 0 || (r.UpperThreshold > 0 && len(r.Tiers) > 0 && r.UpperThreshold <= r.Tiers[len(r.Tiers)-1].Threshold) {
		add("upper_threshold: must be above the highest tier's threshold")
	}
	if len(r.Channels) == 0 {
		add("channels: at least one channel is required")
	}
	for i, c := range r.Channels {
		if !c.Valid() {
			add("channels[%d]: unknown channel %q", i, c)
		}
		if slices.Index(r.Channels, c) < i {
			add("channels[%d]: %s is listed twice", i, c)
		}
	}
	if r.Lifetime <= 0 {
		add("lifetime: must be positive")
	}
	if r.PerFanCap < 0 {
		add("per_fan_cap: must not be negative")
	}
	if r.Cooldown < 0 {
		add("cooldown: must not be negative")
	}
	if r.Budget < 0 {
		add("budget: must not be negative")
	}
	if q := r.QuietHours; q != nil {
		_, ok1 := clock(q.Start)
		_, ok2 := clock(q.End)
		if !ok1 {
			add("quiet_hours.start: want HH:MM, got %q", q.Start)
		}
		if !ok2 {
			add("quiet_hours.end: want HH:MM, got %q", q.End)
		}
		if ok1 && ok2 && q.Start == q.End {
			add("quiet_hours.end: must differ from start")
		}
		if q.Mode != QuietHold && q.Mode != QuietSkip {
			add("quiet_hours.mode: want hold or skip, got %q", q.Mode)
		}
	}
	if r.MaxDistanceKm < 0 {
		add("max_distance_km: must not be negative")
	}
	if r.Holdout < 0 || r.Holdout > 0.5 {
		add("holdout: must be between 0 and 0.5")
	}
	if r.Schedule != nil {
		if _, err := r.Schedule.compile(); err != nil {
			errs = append(errs, err)
		}
	}
	if !r.IssueFrom.IsZero() && !r.IssueUntil.IsZero() && !r.IssueUntil.After(r.IssueFrom) {
		add("issue_until: must be after issue_from")
	}
	errs = append(errs, r.templateProblems()...)
	return errors.Join(errs...)
}

// Offer is a time-limited purchase offer issued to one fan under one rule and tier.
type Offer struct {
	ID          uuid.UUID
	FanID       uuid.UUID
	RuleID      string
	RuleVersion int
	Tier        int // 1-based
	PerformerID string
	ShowID      string
	Perks       []string
	IndexValue  float64
	// EventID is the event that carried the fan across the threshold.
	EventID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// DeliverAfter, when set, holds delivery until the fan's quiet hours end.
	DeliverAfter time.Time
}

// Key identifies the one offer a fan may hold per rule and tier.
type Key struct {
	Fan  uuid.UUID
	Rule string
	Tier int
}

// Key returns the offer's uniqueness key.
func (o Offer) Key() Key { return Key{Fan: o.FanID, Rule: o.RuleID, Tier: o.Tier} }

// PerkText says a perk the way a message to a fan does: "section:Floor A"
// reads "seats in section Floor A". Unknown forms read as written.
func PerkText(perk string) string {
	kind, detail, _ := strings.Cut(perk, ":")
	switch kind {
	case "presale":
		return "presale access"
	case "vip_upgrade":
		return "a VIP upgrade"
	case "backstage":
		return "backstage access"
	case "meet_and_greet":
		return "a meet-and-greet"
	case "section":
		return "seats in section " + detail
	case "discount":
		return strings.TrimSuffix(detail, "%") + "% off"
	case "merch":
		return "merch: " + detail
	}
	return perk
}

// Package offers decides when a fan earns a time-limited offer and what it carries.
// It is plain Go: rules and offers in, decisions out; storage and delivery live elsewhere.
package offers

import (
	"errors"
	"fmt"
	"slices"
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
	Threshold float64  `json:"threshold"`
	Perks     []string `json:"perks"`
}

// Rule is a marketer's offer rule (F9), reduced for now to what the trigger
// needs: whose index counts and the tiers. Thresholds are index points under
// the performer's scoring profile.
type Rule struct {
	ID          string
	Version     int
	PerformerID string
	ShowID      string
	Tiers       []Tier
	Channels    []Channel
	Lifetime    time.Duration
}

// Validate reports every problem with r.
func (r Rule) Validate() error {
	var errs []error
	if r.ID == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if r.PerformerID == "" {
		errs = append(errs, errors.New("performer_id: required"))
	}
	if r.ShowID == "" {
		errs = append(errs, errors.New("show_id: required"))
	}
	if len(r.Tiers) == 0 {
		errs = append(errs, errors.New("tiers: at least one tier is required"))
	}
	for i, t := range r.Tiers {
		if t.Threshold <= 0 {
			errs = append(errs, fmt.Errorf("tiers[%d].threshold: must be positive", i))
		}
		if i > 0 && t.Threshold <= r.Tiers[i-1].Threshold {
			errs = append(errs, fmt.Errorf("tiers[%d].threshold: must be above tiers[%d]", i, i-1))
		}
	}
	if len(r.Channels) == 0 {
		errs = append(errs, errors.New("channels: at least one channel is required"))
	}
	for i, c := range r.Channels {
		if !c.Valid() {
			errs = append(errs, fmt.Errorf("channels[%d]: unknown channel %q", i, c))
		}
	}
	if r.Lifetime <= 0 {
		errs = append(errs, errors.New("lifetime: must be positive"))
	}
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
}

// Key identifies the one offer a fan may hold per rule and tier.
type Key struct {
	Fan  uuid.UUID
	Rule string
	Tier int
}

// Key returns the offer's uniqueness key.
func (o Offer) Key() Key { return Key{Fan: o.FanID, Rule: o.RuleID, Tier: o.Tier} }

// Crossing is the context of an index change during which offers may be issued.
type Crossing struct {
	Fan         uuid.UUID
	Index       float64
	SessionLive bool
	EventID     string
	Now         time.Time
}

// Issued reports whether an offer for k already exists.
type Issued func(k Key) bool

// Evaluate returns the offers r grants for c: one per tier whose threshold the
// index has reached and that the fan does not hold yet. Nothing is issued
// outside a live session (F10).
func Evaluate(r Rule, c Crossing, issued Issued, newID func() uuid.UUID) []Offer {
	if !c.SessionLive {
		return nil
	}
	var out []Offer
	for i, t := range r.Tiers {
		if c.Index < t.Threshold {
			break
		}
		k := Key{Fan: c.Fan, Rule: r.ID, Tier: i + 1}
		if issued(k) {
			continue
		}
		out = append(out, Offer{
			ID:          newID(),
			FanID:       c.Fan,
			RuleID:      r.ID,
			RuleVersion: r.Version,
			Tier:        i + 1,
			PerformerID: r.PerformerID,
			ShowID:      r.ShowID,
			Perks:       slices.Clone(t.Perks),
			IndexValue:  c.Index,
			EventID:     c.EventID,
			IssuedAt:    c.Now,
			ExpiresAt:   c.Now.Add(r.Lifetime),
		})
	}
	return out
}

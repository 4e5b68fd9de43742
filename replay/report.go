// Package replay runs a rule over the activity already in the topic without
// issuing anything (F12a): the same pipeline the consumers run, from empty
// state at the window's start, with only the candidate rule.
package replay

import (
	"time"

	"github.com/google/uuid"
)

// Report is what a dry run found.
type Report struct {
	RuleID  string    `json:"rule_id"`
	Version int       `json:"version"`
	From    time.Time `json:"from"`  // the window replayed
	Until   time.Time `json:"until"` // the log's end when the run began
	Events  int64     `json:"events"`
	// Offers counts the offers the rule would have issued; ByTier and
	// ByChannel split them (the channel is the first of the rule's the fan
	// can be reached on).
	Offers    int            `json:"offers"`
	ByTier    map[int]int    `json:"by_tier"`
	ByChannel map[string]int `json:"by_channel"`
	// NoOffer counts, per tier, the fans who crossed it without an offer, by reason.
	NoOffer map[int]map[string]int `json:"no_offer"`
	Sample  []SampleOffer          `json:"sample"`
	Missed  []SampleDecision       `json:"missed"`
	Notes   []string               `json:"notes"`
}

// SampleOffer is one offer the rule would have issued.
type SampleOffer struct {
	FanID   uuid.UUID `json:"fan_id"`
	Tier    int       `json:"tier"`
	Index   float64   `json:"index"`
	EventID string    `json:"event_id"`
	At      time.Time `json:"at"`
	Channel string    `json:"channel,omitempty"`
}

// SampleDecision is one crossing that would have issued no offer.
type SampleDecision struct {
	FanID  uuid.UUID `json:"fan_id"`
	Tier   int       `json:"tier"`
	Index  float64   `json:"index"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
}

package offers

import (
	"encoding/json"
	"fmt"
	"time"
)

// ruleJSON is a Rule as marketers write it: durations as "48h", times as RFC 3339.
type ruleJSON struct {
	ID             string      `json:"id"`
	Version        int         `json:"version,omitempty"`
	Name           string      `json:"name,omitempty"`
	PerformerID    string      `json:"performer_id"`
	ShowID         string      `json:"show_id"`
	ProfileID      string      `json:"profile_id,omitempty"`
	Tiers          []Tier      `json:"tiers"`
	UpperThreshold float64     `json:"upper_threshold,omitempty"`
	Condition      string      `json:"condition,omitempty"`
	Channels       []Channel   `json:"channels"`
	Lifetime       string      `json:"lifetime"`
	PerFanCap      int         `json:"per_fan_cap,omitempty"`
	Cooldown       string      `json:"cooldown,omitempty"`
	Budget         int         `json:"budget,omitempty"`
	QuietHours     *QuietHours `json:"quiet_hours,omitempty"`
	MaxDistanceKm  float64     `json:"max_distance_km,omitempty"`
	Holdout        float64     `json:"holdout,omitempty"`
	IssueFrom      *time.Time  `json:"issue_from,omitempty"`
	IssueUntil     *time.Time  `json:"issue_until,omitempty"`
	Templates      *Templates  `json:"templates,omitempty"`
	Schedule       *Schedule   `json:"schedule,omitempty"`
}

// MarshalJSON writes the rule as marketers write it.
func (r Rule) MarshalJSON() ([]byte, error) {
	w := ruleJSON{ID: r.ID, Version: r.Version, Name: r.Name, PerformerID: r.PerformerID, ShowID: r.ShowID,
		ProfileID: r.ProfileID, Tiers: r.Tiers, UpperThreshold: r.UpperThreshold, Condition: r.Condition,
		Channels: r.Channels, Lifetime: r.Lifetime.String(), PerFanCap: r.PerFanCap, Budget: r.Budget,
		QuietHours: r.QuietHours, MaxDistanceKm: r.MaxDistanceKm, Holdout: r.Holdout, Templates: r.Templates,
		Schedule: r.Schedule}
	if r.Cooldown > 0 {
		w.Cooldown = r.Cooldown.String()
	}
	if !r.IssueFrom.IsZero() {
		w.IssueFrom = &r.IssueFrom
	}
	if !r.IssueUntil.IsZero() {
		w.IssueUntil = &r.IssueUntil
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a rule; a malformed duration is an error naming its field.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var w ruleJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	dur := func(field, s string) (time.Duration, error) {
		if s == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: want a duration such as 48h or 90m, got %q", field, s)
		}
		return d, nil
	}
	life, err := dur("lifetime", w.Lifetime)
	if err != nil {
		return err
	}
	cool, err := dur("cooldown", w.Cooldown)
	if err != nil {
		return err
	}
	*r = Rule{ID: w.ID, Version: w.Version, Name: w.Name, PerformerID: w.PerformerID, ShowID: w.ShowID,
		ProfileID: w.ProfileID, Tiers: w.Tiers, UpperThreshold: w.UpperThreshold, Condition: w.Condition,
		Channels: w.Channels, Lifetime: life, PerFanCap: w.PerFanCap, Cooldown: cool, Budget: w.Budget,
		QuietHours: w.QuietHours, MaxDistanceKm: w.MaxDistanceKm, Holdout: w.Holdout, Templates: w.Templates,
		Schedule: w.Schedule}
	if w.IssueFrom != nil {
		r.IssueFrom = *w.IssueFrom
	}
	if w.IssueUntil != nil {
		r.IssueUntil = *w.IssueUntil
	}
	return nil
}

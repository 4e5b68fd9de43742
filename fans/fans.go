// Package fans holds what a fan registers (F1) and consents to (F2), and the
// rules those must follow. Plain Go: storage and HTTP live elsewhere.
package fans

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"time"

	"github.com/crescendo-hq/crescendo/events"
)

// Profile is a fan's registration: contact points, time zone and home.
type Profile struct {
	DisplayName string   `json:"display_name"`
	Phone       string   `json:"phone,omitempty"` // E.164
	Email       string   `json:"email,omitempty"`
	PushEnabled *bool    `json:"push_enabled,omitempty"` // default true
	TimeZone    string   `json:"time_zone"`              // IANA name, e.g. Europe/London
	HomeLat     *float64 `json:"home_lat,omitempty"`
	HomeLon     *float64 `json:"home_lon,omitempty"`
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Validate reports every problem with p, each naming its field.
func (p Profile) Validate() error {
	var errs []error
	if len(p.DisplayName) > 200 {
		errs = append(errs, errors.New("display_name: at most 200 bytes"))
	}
	if p.Phone != "" && !e164.MatchString(p.Phone) {
		errs = append(errs, errors.New("phone: must be an E.164 number such as +447700900123"))
	}
	if p.Email != "" {
		if a, err := mail.ParseAddress(p.Email); err != nil || a.Address != p.Email {
			errs = append(errs, errors.New("email: must be a plain address such as fan@example.com"))
		}
	}
	if p.TimeZone == "" {
		errs = append(errs, errors.New("time_zone: required (an IANA name such as Europe/London)"))
	} else if _, err := time.LoadLocation(p.TimeZone); err != nil {
		errs = append(errs, fmt.Errorf("time_zone: unknown zone %q", p.TimeZone))
	}
	if (p.HomeLat == nil) != (p.HomeLon == nil) {
		errs = append(errs, errors.New("home_lat, home_lon: give both or neither"))
	}
	if p.HomeLat != nil && (*p.HomeLat < -90 || *p.HomeLat > 90) {
		errs = append(errs, errors.New("home_lat: must be between -90 and 90"))
	}
	if p.HomeLon != nil && (*p.HomeLon < -180 || *p.HomeLon > 180) {
		errs = append(errs, errors.New("home_lon: must be between -180 and 180"))
	}
	return errors.Join(errs...)
}

// Scope is the signal kinds a linked account may contribute; nil means all of them.
type Scope []events.Type

// Validate reports unknown kinds.
func (s Scope) Validate() error {
	var errs []error
	for i, t := range s {
		if !t.Valid() {
			errs = append(errs, fmt.Errorf("scope[%d]: unknown signal kind %q", i, t))
		}
	}
	return errors.Join(errs...)
}

// Allows reports whether events of type t may count.
func (s Scope) Allows(t events.Type) bool {
	return s == nil || slices.Contains(s, t)
}

// Consent is a fan's consent for one linked account, in the words they agreed to.
type Consent struct {
	Scope   Scope  `json:"scope,omitempty"`
	Wording string `json:"wording"`
}

// Validate reports every problem with c.
func (c Consent) Validate() error {
	var errs []error
	if c.Wording == "" {
		errs = append(errs, errors.New("consent.wording: required: the text the fan agreed to is kept in the ledger"))
	}
	if err := c.Scope.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("consent.%w", err))
	}
	return errors.Join(errs...)
}

package offers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a rule is active (F20): from each time its cron
// expression fires, read in its time zone, for Duration. "0 18 * * FRI"
// with "4h" in Europe/Berlin is Fridays 18:00 to 22:00 Berlin time, summer
// and winter alike. Outside those windows the rule issues nothing, live or
// in a dry run, since both judge by the event's time.
type Schedule struct {
	// Cron is a five-field expression or a descriptor such as @daily.
	Cron string `json:"cron"`
	// TimeZone is an IANA zone name; empty: UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// Duration is how long each window lasts, e.g. "4h" or "90m".
	Duration string `json:"duration"`
}

// MaxScheduleWindow bounds a schedule's window: a longer one is a date
// range, which issue_from and issue_until say better.
const MaxScheduleWindow = 7 * 24 * time.Hour

var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// activeWindows is a compiled Schedule.
type activeWindows struct {
	spec *cron.SpecSchedule
	dur  time.Duration
}

// compile parses the schedule, naming each bad field by its path.
func (s Schedule) compile() (*activeWindows, error) {
	var errs []error
	loc := time.UTC
	if s.TimeZone != "" {
		l, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule.time_zone: unknown zone %q", s.TimeZone))
		} else {
			loc = l
		}
	}
	var spec *cron.SpecSchedule
	switch c := strings.TrimSpace(s.Cron); {
	case c == "":
		errs = append(errs, errors.New("schedule.cron: required, e.g. \"0 18 * * FRI\""))
	case strings.HasPrefix(c, "@every"), strings.Contains(c, "TZ="):
		errs = append(errs, fmt.Errorf("schedule.cron: want a calendar expression (time zone in time_zone); got %q", c))
	default:
		parsed, err := scheduleParser.Parse(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule.cron: %w", err))
		} else if sp, ok := parsed.(*cron.SpecSchedule); ok {
			spec = sp
		}
	}
	dur, err := time.ParseDuration(s.Duration)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("schedule.duration: want a duration such as 4h or 90m; got %q", s.Duration))
	case dur < time.Minute || dur > MaxScheduleWindow:
		errs = append(errs, fmt.Errorf("schedule.duration: must be 1m to %s; got %s", MaxScheduleWindow, dur))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	spec.Location = loc
	return &activeWindows{spec: spec, dur: dur}, nil
}

// active reports whether t falls in a window, and if not when the next opens.
// The window that holds t, if any, opened at the first firing after t-dur.
func (w *activeWindows) active(t time.Time) (bool, time.Time) {
	opened := w.spec.Next(t.Add(-w.dur))
	if !opened.After(t) {
		return true, time.Time{}
	}
	return false, opened
}

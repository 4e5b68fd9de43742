package offers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestScheduleFollowsDaylightSaving: "18:00 for two hours, Berlin time" is
// 17:00-19:00 UTC in winter and 16:00-18:00 UTC from the last Sunday of
// March, when Berlin moves to UTC+2 (2027-03-28). A fixed offset would be
// an hour off on one side of the change.
func TestScheduleFollowsDaylightSaving(t *testing.T) {
	w, err := Schedule{Cron: "0 18 * * *", TimeZone: "Europe/Berlin", Duration: "2h"}.compile()
	if err != nil {
		t.Fatal(err)
	}
	utc := func(day, h, m int) time.Time { return time.Date(2027, 3, day, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{utc(27, 16, 30), false}, // winter: 17:30 in Berlin
		{utc(27, 17, 0), true},   // 18:00 in Berlin: opens
		{utc(27, 18, 30), true},  // 19:30
		{utc(27, 19, 0), false},  // 20:00: closed
		{utc(28, 15, 59), false}, // summer from 01:00 UTC: 17:59 in Berlin
		{utc(28, 16, 0), true},   // 18:00 in Berlin
		{utc(28, 17, 30), true},  // 19:30
		{utc(28, 18, 0), false},  // 20:00
	} {
		if got, next := w.active(tc.at); got != tc.want {
			t.Errorf("at %s: active %v (next %s), want %v", tc.at.Format(time.RFC3339), got, next, tc.want)
		}
	}
	if _, next := w.active(utc(28, 10, 0)); !next.Equal(utc(28, 16, 0)) {
		t.Errorf("next opening after 12:00 Berlin on the 28th: %s, want 16:00 UTC", next)
	}
}

// TestRuleScheduleGatesOffers: outside the rule's windows a crossing gets
// the outside_schedule reason and no offer; inside, the offer. The dry run
// goes through this same Evaluate with the events' times.
func TestRuleScheduleGatesOffers(t *testing.T) {
	r := testRule()
	at := evening.UTC()
	open := at.Add(-30 * time.Minute)
	r.Schedule = &Schedule{Cron: open.Format("4 15") + " * * *", Duration: "1h"}
	c := crossing(uuid.New(), 25, evening)
	if got, ds := compile(t, r).Evaluate(&c, held{}.at, uuid.New); len(got) != 1 || len(ds) != 0 {
		t.Fatalf("inside the window: %d offers, %q", len(got), reasons(ds))
	}
	r.Schedule = &Schedule{Cron: open.Format("4 15") + " * * *", Duration: "20m"}
	got, ds := compile(t, r).Evaluate(&c, held{}.at, uuid.New)
	if len(got) != 0 || reasons(ds) != "1:outside_schedule" || !strings.Contains(ds[0].Detail, "opens next at") {
		t.Fatalf("after the window closed: %d offers, %+v", len(got), ds)
	}
}

func TestScheduleValidationNamesFields(t *testing.T) {
	r := testRule()
	r.Schedule = &Schedule{Cron: "61 * * * *", TimeZone: "Mars/Olympus", Duration: "forever"}
	err := r.Validate()
	for _, want := range []string{"schedule.cron:", "schedule.time_zone:", "schedule.duration:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	r.Schedule = &Schedule{Cron: "@every 1h", Duration: "200h"}
	err = r.Validate()
	if err == nil || !strings.Contains(err.Error(), "schedule.cron: want a calendar expression") || !strings.Contains(err.Error(), "schedule.duration: must be") {
		t.Errorf("error %v", err)
	}
	r.Schedule = &Schedule{Cron: "0 18 * * FRI", TimeZone: "America/New_York", Duration: "4h"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil || back.Schedule == nil || *back.Schedule != *r.Schedule || back.Validate() != nil {
		t.Fatalf("round trip: %+v, %v (%s)", back.Schedule, err, b)
	}
}

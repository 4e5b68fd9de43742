package fans

import (
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/events"
)

func TestProfileValidateListsEveryProblem(t *testing.T) {
	lat := 91.0
	err := Profile{Phone: "0770", Email: "Fan <fan@example.com>", TimeZone: "Mars/Olympus", HomeLat: &lat}.Validate()
	for _, want := range []string{"phone:", "email:", "time_zone:", "home_lat, home_lon", "home_lat: must be"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	lon := -0.12
	lat = 51.5
	if err := (Profile{Phone: "+447700900123", Email: "fan@example.com", TimeZone: "Europe/London", HomeLat: &lat, HomeLon: &lon}).Validate(); err != nil {
		t.Fatalf("valid profile refused: %v", err)
	}
	if err := (Profile{}).Validate(); err == nil || !strings.Contains(err.Error(), "time_zone: required") {
		t.Fatalf("missing zone: %v", err)
	}
}

func TestScope(t *testing.T) {
	var all Scope
	if !all.Allows(events.TypeSocialPost) {
		t.Fatal("nil scope must allow every kind")
	}
	narrow := Scope{events.TypeListen}
	if !narrow.Allows(events.TypeListen) || narrow.Allows(events.TypeSocialPost) {
		t.Fatal("narrow scope wrong")
	}
	if err := (Consent{Scope: Scope{"listen", "telepathy"}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "consent.wording") || !strings.Contains(err.Error(), `scope[1]: unknown signal kind "telepathy"`) {
		t.Fatalf("consent validation: %v", err)
	}
}

package events

import (
	"fmt"
	"testing"
	"time"
)

// TestDecodeSharedStrings holds the strings the decoder shares between
// events (sources, devices, country codes) to what a copy would hold:
// sources that take the same cache slot in turn, codes in either case and
// values it does not keep.
func TestDecodeSharedStrings(t *testing.T) {
	d, err := NewDecoder(DecoderConfig{Clock: func() time.Time { return time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	// Same length and last byte: the same slot.
	sources := []string{"https://a.example/x", "https://b.example/x", "https://c.example/x", "p"}
	for _, tc := range []struct{ device, country, wantCountry string }{
		{"mobile", "GB", "GB"}, {"speaker", "gb", "GB"}, {"fridge", "Us", "US"}, {"car", "zZ", "ZZ"},
	} {
		for i, src := range sources {
			value := fmt.Appendf(nil, `{"specversion":"1.0","id":"e%d","source":%q,"type":"listen","subject":"u1","time":"2025-06-01T12:00:00Z",`+
				`"data":{"performer":"p","track":"t","ms_played":1000,"device":%q,"country":%q}}`, i, src, tc.device, tc.country)
			ev, err := d.Decode(value, nil)
			if err != nil {
				t.Fatalf("decoding %s: %v", value, err)
			}
			if ev.Source != src {
				t.Errorf("source = %q, want %q", ev.Source, src)
			}
			if ev.Listen.Device != tc.device || ev.Listen.Country != tc.wantCountry {
				t.Errorf("device, country = %q, %q; want %q, %q", ev.Listen.Device, ev.Listen.Country, tc.device, tc.wantCountry)
			}
		}
	}
}

func TestCountryCode(t *testing.T) {
	for in, want := range map[string]string{"GB": "GB", "gb": "GB", "gB": "GB", "a1": "A1", "ß": "ß", "usa": "USA", "": "", "@[": "@["} {
		if got, _ := countryCode([]byte(in)); got != want {
			t.Errorf("countryCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecodeRemembersOnlyValidSources checks that a known source skips
// validation only because it passed it: a bad source is rejected every time
// it comes, and a good one sharing its cache slot still decodes.
func TestDecodeRemembersOnlyValidSources(t *testing.T) {
	d, err := NewDecoder(DecoderConfig{Clock: func() time.Time { return time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	event := func(src, subject string) []byte {
		return fmt.Appendf(nil, `{"specversion":"1.0","id":"e1","source":%q,"type":"listen","subject":%q,"time":"2025-06-01T12:00:00Z",`+
			`"data":{"performer":"p","track":"t","ms_played":1000,"device":"mobile","country":"GB"}}`, src, subject)
	}
	// Same length and last byte: the same slot.
	bad, good := "https://a.exa{ple/x", "https://b.example/x"
	for range 3 {
		for range 2 {
			if _, err := d.Decode(event(bad, "u1"), nil); err == nil {
				t.Fatalf("source %q decoded", bad)
			}
		}
		if ev, err := d.Decode(event(good, "u1"), nil); err != nil || ev.Source != good {
			t.Fatalf("source %q: %v, %q", good, err, ev.Source)
		}
		// A known source does not excuse the other attributes.
		if _, err := d.Decode(event(good, " "), nil); err == nil {
			t.Fatalf("blank subject decoded with the known source %q", good)
		}
	}
}

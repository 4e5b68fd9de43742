package events

import (
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		fast bool // read by the hand-written path
	}{
		{"2025-06-01T12:00:00Z", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), true},
		{"2025-06-01T12:00:00.1Z", time.Date(2025, 6, 1, 12, 0, 0, 100_000_000, time.UTC), true},
		{"2025-06-01T12:00:00.123Z", time.Date(2025, 6, 1, 12, 0, 0, 123_000_000, time.UTC), true},
		{"2025-06-01T12:00:00.123456789Z", time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.UTC), true},
		{"2024-02-29T23:59:59Z", time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), true},
		{"2000-02-29T00:00:00Z", time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC), true},
		// Not canonical: the standard library decides.
		{"2025-06-01T14:00:00+02:00", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), false},
		{"2025-06-01T12:00:00.1234567891Z", time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.UTC), false},
	} {
		got, err := parseTimestamp([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if _, fast := parseCanonicalUTC([]byte(tc.in)); fast != tc.fast {
			t.Errorf("parseCanonicalUTC(%q) ok = %v, want %v", tc.in, fast, tc.fast)
		}
	}
	for _, in := range []string{
		"", "2025-06-01", "2025-06-01T12:00:00", "2025-13-01T12:00:00Z", "2025-02-29T12:00:00Z",
		"1900-02-29T00:00:00Z", "2025-06-31T12:00:00Z", "2025-06-01T24:00:00Z", "2025-06-01T12:60:00Z",
		"2025-06-01T12:00:61Z", "2025-06-01T12:00:00.Z", "2025-06-01T12:00:00,5Z", "2025-06-01T12:00:00.5xZ",
		"+025-06-01T12:00:00Z", "2025-06-01 12:00:00Z", "2025-06-01T12:00:00ZZ",
	} {
		if _, ok := parseCanonicalUTC([]byte(in)); ok {
			t.Errorf("parseCanonicalUTC(%q) accepted it", in)
		}
		var std time.Time
		stdErr := std.UnmarshalText([]byte(in))
		got, err := parseTimestamp([]byte(in))
		if (err == nil) != (stdErr == nil) || (err == nil && got != std.UTC()) {
			t.Errorf("parseTimestamp(%q) = %v, %v; the standard library says %v, %v", in, got, err, std.UTC(), stdErr)
		}
	}
}

// FuzzParseTimestamp holds the hand-written path to the standard library:
// whatever it accepts, UnmarshalText accepts as the same instant in UTC.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2025-06-01T12:00:00Z", "2025-06-01T12:00:00.123456789Z", "2024-02-29T23:59:59.5Z",
		"2025-06-01T14:00:00+02:00", "2025-06-01T12:00:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseCanonicalUTC(b)
		if !ok {
			return
		}
		var std time.Time
		if err := std.UnmarshalText(b); err != nil {
			t.Fatalf("parseCanonicalUTC(%q) = %v, but the standard library rejects it: %v", b, got, err)
		}
		if got != std.UTC() {
			t.Fatalf("parseCanonicalUTC(%q) = %v, the standard library says %v", b, got, std.UTC())
		}
	})
}

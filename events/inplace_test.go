package events

import (
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeInPlace holds the one-pass read of data to the two-pass one:
// for any record, both accept the same event or reject with the same reason
// and detail. The seeds cover data before and after the type, data that
// fails in place (null, wrong kind, a bad member) and envelopes whose own
// errors follow the data.
func FuzzDecodeInPlace(f *testing.F) {
	for _, s := range []string{
		string(benchListen),
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","data":{"performer":"p","track":"t","ms_played":1},"type":"listen","time":"2025-06-01T12:00:00Z"}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"listen","time":"2025-06-01T12:00:00Z","data":null}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"listen","time":"2025-06-01T12:00:00Z","data":[1]}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"listen","data":{"performer":7},"time":"yesterday"}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"listen","data":{"performer":"p","track":"t","ms_played":-1},"time":"2025-06-01T12:00:00Z"}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"follow","data":{"performer":"p"},"data":{},"time":"2025-06-01T12:00:00Z"}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"page_view","data":{"performer":"p","url":"https://x.example/"},"type":"listen","time":"2025-06-01T12:00:00Z"}`,
		`{"specversion":"1.0","id":"e1","source":"s","subject":"u1","type":"social_post","data":{"text":"I love p","channel":"x"}`,
	} {
		f.Add([]byte(s))
	}
	clock := func() time.Time { return time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC) }
	one, err := NewDecoder(DecoderConfig{Clock: clock})
	if err != nil {
		f.Fatal(err)
	}
	two, err := NewDecoder(DecoderConfig{Clock: clock})
	if err != nil {
		f.Fatal(err)
	}
	two.twoPass = true
	f.Fuzz(func(t *testing.T, value []byte) {
		e1, err1 := one.Decode(value, nil)
		e2, err2 := two.Decode(value, nil)
		if !reflect.DeepEqual(err1, err2) || !reflect.DeepEqual(e1, e2) {
			t.Fatalf("one pass: %+v, %v\ntwo passes: %+v, %v", e1, err1, e2, err2)
		}
	})
}

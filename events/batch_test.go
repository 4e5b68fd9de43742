package events_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/crescendo-hq/crescendo/events"
)

func TestSplitBatch(t *testing.T) {
	for _, c := range []struct {
		body string
		n    int
		ok   bool
	}{
		{`[]`, 0, true},
		{` [ {"id":"a"} , {"id":"b","data":[1,2]} ] `, 2, true},
		{`[1, "x", null]`, 3, true}, // elements are Decode's business
		{`{"id":"a"}`, 0, false},
		{`[{"id":"a"}`, 0, false},
		{`[{"id":"a"}] [`, 0, false},
		{`[{"id":"a"},]`, 0, false},
		{``, 0, false},
		{`[{},{},{},{}]`, 0, false}, // over the limit of 3
	} {
		got, err := events.SplitBatch([]byte(c.body), 3)
		if c.ok != (err == nil) || len(got) != c.n {
			t.Errorf("SplitBatch(%q) = %d elements, %v; want %d, ok %v", c.body, len(got), err, c.n, c.ok)
		}
		if err != nil && !errors.Is(err, events.ErrBatch) {
			t.Errorf("SplitBatch(%q): %v is not ErrBatch", c.body, err)
		}
	}
	got, _ := events.SplitBatch([]byte(`[{"id": "a" }]`), 3)
	if string(got[0]) != `{"id": "a" }` {
		t.Errorf("element %q is not the bytes sent", got[0])
	}
}

// FuzzSplitBatch checks that SplitBatch never panics, fails only with
// ErrBatch, respects its limit, and returns elements that are each valid
// JSON and together re-form an array that splits the same way.
func FuzzSplitBatch(f *testing.F) {
	for _, s := range []string{`[]`, `[{"specversion":"1.0","id":"1","source":"p","type":"listen"}]`, `[1,[2],{"a":{}}]`, `[`, `{}`, `[] x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		parts, err := events.SplitBatch(body, 8)
		if err != nil {
			if !errors.Is(err, events.ErrBatch) {
				t.Fatalf("error %v is not ErrBatch", err)
			}
			return
		}
		if len(parts) > 8 {
			t.Fatalf("%d elements over the limit of 8", len(parts))
		}
		for _, p := range parts {
			if !json.Valid(p) {
				t.Fatalf("element %q is not valid JSON", p)
			}
		}
		again, err := json.Marshal(parts)
		if err != nil {
			t.Fatal(err)
		}
		back, err := events.SplitBatch(again, 8)
		if err != nil || len(back) != len(parts) {
			t.Fatalf("re-formed array %q splits into %d (%v), want %d", again, len(back), err, len(parts))
		}
	})
}

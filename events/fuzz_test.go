package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/events"
)

// parseHeaders turns "key:value" lines into headers, so the fuzzer can vary
// binary-mode attributes through a plain string.
func parseHeaders(s string) []events.Header {
	if s == "" {
		return nil
	}
	var hs []events.Header
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, ":")
		hs = append(hs, events.Header{Key: k, Value: []byte(v)})
	}
	return hs
}

// FuzzDecode checks that Decode never panics, that every error is a
// *Rejection with a known reason, and that whatever it accepts re-encodes
// to an event that decodes to the same thing.
//
// The seed corpus is in testdata/fuzz/FuzzDecode: one valid event of each
// type in structured mode, some in binary mode, and malformed ones.
func FuzzDecode(f *testing.F) {
	reasons := map[events.Reason]bool{
		events.ReasonMalformed: true, events.ReasonOversized: true, events.ReasonSpecVersion: true,
		events.ReasonUnknownType: true, events.ReasonMissingField: true, events.ReasonInvalidField: true,
		events.ReasonFutureDated: true,
	}
	d := newDecoder(f, events.DecoderConfig{})
	f.Fuzz(func(t *testing.T, value []byte, headers string) {
		e, err := d.Decode(value, parseHeaders(headers))
		if err != nil {
			var rej *events.Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("error %v is %T, not a *Rejection", err, err)
			}
			if !reasons[rej.Reason] || rej.Detail == "" {
				t.Fatalf("rejection %q: %q has an unknown reason or no detail", rej.Reason, rej.Detail)
			}
			return
		}
		enc, err := events.Encode(e)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", e, err)
		}
		again, err := d.Decode(enc, nil)
		if err != nil {
			t.Fatalf("decoding re-encoded %s: %v", enc, err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v\nvia %s", again, e, enc)
		}
	})
}

// TestFuzzSeeds keeps the seed corpus honest: the seeds named as valid
// events must decode, the others must not.
func TestFuzzSeeds(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	d := newDecoder(t, events.DecoderConfig{})
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a two-argument corpus file", file)
		}
		value, err1 := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		headers, err2 := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "string("), ")"))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		name := filepath.Base(file)
		_, err = d.Decode([]byte(value), parseHeaders(headers))
		wantValid := strings.HasPrefix(name, "structured_") || strings.HasPrefix(name, "binary_") ||
			name == "extensions" || name == "escapes"
		if wantValid && err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !wantValid && err == nil && !strings.HasPrefix(name, "found_") {
			t.Errorf("%s decoded, want a rejection", name)
		}
	}
}

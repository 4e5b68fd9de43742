package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// BatchContentType is the media type of a JSON batch of CloudEvents
// (CloudEvents JSON format, section 4: an array of structured events).
const BatchContentType = "application/cloudevents-batch+json"

// ErrBatch marks a batch that cannot be split into events at all: not a
// JSON array, or more events than allowed. A bad event inside a well-formed
// array is not a batch error: it is rejected on its own by Decode.
var ErrBatch = errors.New("invalid batch")

// SplitBatch splits a JSON array of CloudEvents into its elements, each the
// exact bytes the partner sent (Decode validates them one by one, and the
// accepted ones are produced unchanged). It refuses anything but an array,
// and arrays of more than maxEvents elements.
func SplitBatch(body []byte, maxEvents int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBatch, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: want a JSON array of events", ErrBatch)
	}
	out := make([]json.RawMessage, 0, 16)
	for dec.More() {
		if len(out) == maxEvents {
			return nil, fmt.Errorf("%w: more than %d events", ErrBatch, maxEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: element %d: %v", ErrBatch, len(out), err)
		}
		out = append(out, raw)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, fmt.Errorf("%w: %v", ErrBatch, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the array", ErrBatch)
	}
	return out, nil
}

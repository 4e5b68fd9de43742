package events

import (
	"encoding/json"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
)

var benchListen = []byte(`{"specversion":"1.0","id":"0190a7f4-5a7e-7cc1-9f1e-3b9d5e0c2a11","source":"https://streamco.example","type":"listen","subject":"user-4817263","time":"2025-06-01T12:00:00.123Z","datacontenttype":"application/json","data":{"performer":"taylor-swift","track":"Cruel Summer","ms_played":178000,"device":"mobile","country":"US"}}`)

func benchDecoder(b *testing.B) *Decoder {
	b.Helper()
	d, err := NewDecoder(DecoderConfig{Clock: func() time.Time { return time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC) }})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkDecodeListen measures the hot path: a structured-mode listen.
func BenchmarkDecodeListen(b *testing.B) {
	d := benchDecoder(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchListen)))
	for b.Loop() {
		if _, err := d.Decode(benchListen, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeListenBinary measures a binary-mode listen.
func BenchmarkDecodeListenBinary(b *testing.B) {
	d := benchDecoder(b)
	value := []byte(`{"performer":"taylor-swift","track":"Cruel Summer","ms_played":178000,"device":"mobile","country":"US"}`)
	headers := []Header{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("0190a7f4-5a7e-7cc1-9f1e-3b9d5e0c2a11")},
		{Key: "ce_source", Value: []byte("https://streamco.example")},
		{Key: "ce_type", Value: []byte("listen")},
		{Key: "ce_subject", Value: []byte("user-4817263")},
		{Key: "ce_time", Value: []byte("2025-06-01T12:00:00.123Z")},
		{Key: "content-type", Value: []byte("application/json")},
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := d.Decode(value, headers); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeListenSDK is the alternative doc.go weighs: the CloudEvents
// SDK parses and validates the envelope, then the same data decoding runs.
func BenchmarkDecodeListenSDK(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchListen)))
	for b.Loop() {
		var ev ce.Event
		if err := json.Unmarshal(benchListen, &ev); err != nil {
			b.Fatal(err)
		}
		if err := ev.Validate(); err != nil {
			b.Fatal(err)
		}
		if ev.Subject() == "" {
			b.Fatal("no subject")
		}
		e := Event{ID: ev.ID(), Source: ev.Source(), Subject: ev.Subject(), Type: Type(ev.Type()), Time: ev.Time()}
		if !e.Type.Valid() {
			b.Fatal("bad type")
		}
		if rej := decodeData(&e, ev.Data()); rej != nil {
			b.Fatal(rej)
		}
	}
}

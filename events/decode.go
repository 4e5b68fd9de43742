package events

import (
	"cmp"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults for DecoderConfig.
const (
	// DefaultMaxSize is the default DecoderConfig.MaxSize: Kafka's own
	// default message.max.bytes, so anything a default broker accepts fits.
	DefaultMaxSize = 1 << 20
	// DefaultMaxFutureSkew is the default DecoderConfig.MaxFutureSkew.
	DefaultMaxFutureSkew = 5 * time.Minute
)

// DecoderConfig configures a Decoder. The zero value is usable.
type DecoderConfig struct {
	// MaxSize is the largest record accepted, in bytes: the value plus all
	// header keys and values. Larger records are rejected with
	// ReasonOversized before any parsing. Defaults to DefaultMaxSize.
	MaxSize int
	// MaxFutureSkew is how far ahead of Clock an event's time may be before
	// it is rejected with ReasonFutureDated; it absorbs partners' clock
	// drift. Defaults to DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration
	// Clock returns the current time. Defaults to time.Now; tests pin it.
	Clock func() time.Time
}

// Decoder decodes and validates fan activity events. One Decoder may be
// shared by any number of goroutines: its only mutable state is a cache of
// immutable strings.
type Decoder struct {
	maxSize       int
	maxFutureSkew time.Duration
	clock         func() time.Time
	// twoPass turns off reading data in the envelope's pass, for the test
	// that holds both ways to the same results.
	twoPass bool
	// sources keeps recent source attributes: a stream comes from a handful
	// of partners, so nearly every event finds its source here instead of
	// allocating a copy. Slots are replaced whole, never written into.
	sources [8]atomic.Pointer[string]
	// accepted is the latest time, in Unix nanoseconds, that a reading of
	// the clock allowed (now plus MaxFutureSkew): an event no later than it
	// passes without reading the clock again, which cost the event path
	// about 0.1 µs. With a clock that moves forward the answer is the one a
	// fresh reading gives; only after the wall clock is set back does an
	// event get the earlier reading's allowance, at most the step back.
	accepted atomic.Int64
}

// source returns b as a string, shared with earlier events of the source,
// and whether an earlier event's source was b: only sources that passed
// validation are remembered, so a known one needs no checking again.
func (d *Decoder) source(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	if p := d.sources[sourceSlot(len(b), b[len(b)-1])].Load(); p != nil && *p == string(b) {
		return *p, true
	}
	return string(b), false
}

// rememberSource keeps s, a source that passed validation, for later events.
func (d *Decoder) rememberSource(s string) {
	d.sources[sourceSlot(len(s), s[len(s)-1])].Store(&s)
}

// sourceSlot places a source of length n ending in last in Decoder.sources.
func sourceSlot(n int, last byte) int {
	return (n ^ int(last)) & (len(Decoder{}.sources) - 1)
}

// NewDecoder returns a Decoder for cfg, filling in defaults.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	if cfg.MaxSize < 0 {
		return nil, fmt.Errorf("validating config: MaxSize %d is negative", cfg.MaxSize)
	}
	if cfg.MaxFutureSkew < 0 {
		return nil, fmt.Errorf("validating config: MaxFutureSkew %s is negative", cfg.MaxFutureSkew)
	}
	d := &Decoder{
		maxSize:       cmp.Or(cfg.MaxSize, DefaultMaxSize),
		maxFutureSkew: cmp.Or(cfg.MaxFutureSkew, DefaultMaxFutureSkew),
		clock:         cfg.Clock,
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	return d, nil
}

// Header keys of the CloudEvents Kafka protocol binding. Kafka header keys
// are case-sensitive and the binding spells them in lower case, so they are
// matched exactly.
const (
	headerContentType     = "content-type"
	headerSpecVersion     = "ce_specversion"
	headerID              = "ce_id"
	headerSource          = "ce_source"
	headerType            = "ce_type"
	headerSubject         = "ce_subject"
	headerTime            = "ce_time"
	contentTypeStructured = "application/cloudevents+json"
)

// attributes are the CloudEvents context attributes this package reads,
// from either content mode. They alias the record, so that the ones that
// are only checked (specversion, type, time) cost no allocation.
type attributes struct {
	specVersion []byte
	id          []byte
	source      []byte
	typ         []byte
	subject     []byte
	time        []byte
	// dataContentType is only meaningful when hasDataContentType; an
	// absent one implies JSON.
	dataContentType    []byte
	hasDataContentType bool
}

// Decode decodes one Kafka record into an Event.
//
// The record is in binary content mode when headers hold ce_specversion, and
// in structured content mode otherwise. Any error is a *Rejection.
func (d *Decoder) Decode(value []byte, headers []Header) (Event, error) {
	size := len(value)
	binary := false
	for _, h := range headers {
		size += len(h.Key) + len(h.Value)
		if h.Key == headerSpecVersion {
			binary = true
		}
	}
	if size > d.maxSize {
		return Event{}, reject(ReasonOversized, "record is %d bytes, over the limit of %d", size, d.maxSize)
	}

	var (
		e       Event
		attrs   attributes
		data    []byte
		inPlace bool
		rej     *Rejection
	)
	if binary {
		attrs, rej = binaryAttributes(headers)
		data = value
	} else {
		pre := &e
		if d.twoPass {
			pre = nil
		}
		attrs, data, inPlace, rej = structuredAttributes(value, headers, pre)
	}
	if rej != nil {
		return Event{}, rej
	}

	if rej := d.decodeAttributes(&attrs, &e); rej != nil {
		return Event{}, rej
	}
	if inPlace {
		rej = validateData(&e)
	} else {
		rej = decodeData(&e, data)
	}
	if rej != nil {
		return Event{}, rej
	}
	return e, nil
}

// Bits for the envelope members and headers, to reject repeats.
const (
	fieldSpecVersion fields = 1 << iota
	fieldID
	fieldSource
	fieldType
	fieldSubject
	fieldTime
	fieldDataContentType
	fieldData
)

// structuredAttributes reads a structured-mode event, returning its
// attributes and its data member, which is checked for syntax only.
//
// When the type comes before data, as every CloudEvents SDK writes it, data
// is read into e's payload in the same pass (inPlace), saving a second scan
// of the largest member. If that read fails, data is skipped and left for
// decodeData, so that every rejection is the one it would be otherwise: an
// envelope's errors come before its data's.
func structuredAttributes(value []byte, headers []Header, e *Event) (attrs attributes, data []byte, inPlace bool, rej *Rejection) {
	for _, h := range headers {
		if h.Key == headerContentType && !isMediaType(string(h.Value), contentTypeStructured) {
			return attrs, nil, false, reject(ReasonMalformed,
				"content-type header %.64q without a ce_specversion header: want %s (structured mode) or ce_ headers (binary mode)",
				h.Value, contentTypeStructured)
		}
	}
	l := lexer{b: value}
	if l.peek() != '{' {
		return attrs, nil, false, reject(ReasonMalformed, "value is not a JSON object")
	}
	l.i++
	var seen fields
	for n := 0; ; n++ {
		name, ok, rej := l.member(n)
		if rej != nil {
			return attrs, nil, false, rej
		}
		if !ok {
			break
		}
		// Attribute names are lower case by the spec, and matched exactly.
		// The attribute name is repeated as a constant so that error
		// details do not cost a conversion on the happy path.
		var (
			dst  *[]byte
			bit  fields
			attr string
		)
		switch string(name) {
		case "specversion":
			dst, bit, attr = &attrs.specVersion, fieldSpecVersion, "specversion"
		case "id":
			dst, bit, attr = &attrs.id, fieldID, "id"
		case "source":
			dst, bit, attr = &attrs.source, fieldSource, "source"
		case "type":
			dst, bit, attr = &attrs.typ, fieldType, "type"
		case "subject":
			dst, bit, attr = &attrs.subject, fieldSubject, "subject"
		case "time":
			dst, bit, attr = &attrs.time, fieldTime, "time"
		case "datacontenttype":
			dst, bit, attr = &attrs.dataContentType, fieldDataContentType, "datacontenttype"
		case "data":
			if rej := seen.first(fieldData, "", "data"); rej != nil {
				return attrs, nil, false, rej
			}
			start := l.i
			if typ, ok := parseType(attrs.typ); ok && e != nil {
				e.Type = typ
				in := lexer{b: value, i: start}
				if readData(e, &in) == nil {
					l.i, data, inPlace = in.i, value[start:in.i], true
					continue
				}
				*e = Event{}
			}
			if rej := l.skip(0); rej != nil {
				return attrs, nil, false, rej
			}
			data = value[start:l.i]
			continue
		case "data_base64":
			return attrs, nil, false, reject(ReasonInvalidField, "data_base64: binary data is not accepted, send data as a JSON object")
		default:
			// Extension attributes.
			if rej := l.skip(0); rej != nil {
				return attrs, nil, false, rej
			}
			continue
		}
		if rej := seen.first(bit, "", attr); rej != nil {
			return attrs, nil, false, rej
		}
		v, present, rej := l.readBytes("", attr)
		if rej != nil {
			return attrs, nil, false, rej
		}
		*dst = v
		if bit == fieldDataContentType {
			attrs.hasDataContentType = present
		}
	}
	if rej := l.end(); rej != nil {
		return attrs, nil, false, rej
	}
	return attrs, data, inPlace, nil
}

// binaryAttributes reads the attributes of a binary-mode event from its
// headers.
func binaryAttributes(headers []Header) (attributes, *Rejection) {
	var (
		attrs attributes
		seen  fields
	)
	for _, h := range headers {
		var (
			dst *[]byte
			bit fields
		)
		switch h.Key {
		case headerSpecVersion:
			dst, bit = &attrs.specVersion, fieldSpecVersion
		case headerID:
			dst, bit = &attrs.id, fieldID
		case headerSource:
			dst, bit = &attrs.source, fieldSource
		case headerType:
			dst, bit = &attrs.typ, fieldType
		case headerSubject:
			dst, bit = &attrs.subject, fieldSubject
		case headerTime:
			dst, bit = &attrs.time, fieldTime
		case headerContentType:
			dst, bit = &attrs.dataContentType, fieldDataContentType
			attrs.hasDataContentType = true
		default:
			// Extensions and other applications' headers.
			continue
		}
		if rej := seen.first(bit, "header", h.Key); rej != nil {
			return attrs, rej
		}
		// Unlike JSON strings, headers are arbitrary bytes; what the event
		// keeps must be text.
		if !utf8.Valid(h.Value) {
			return attrs, reject(ReasonInvalidField, "header %s is not valid UTF-8", h.Key)
		}
		*dst = h.Value
	}
	return attrs, nil
}

// decodeAttributes validates the context attributes and sets them on e.
func (d *Decoder) decodeAttributes(a *attributes, e *Event) *Rejection {
	switch {
	case len(a.specVersion) == 0:
		return missing("specversion")
	case string(a.specVersion) != "1.0":
		return reject(ReasonSpecVersion, "specversion %.16q is not 1.0", a.specVersion)
	}
	if len(a.typ) == 0 {
		return missing("type")
	}
	typ, ok := parseType(a.typ)
	if !ok {
		return reject(ReasonUnknownType, "type %.64q is not a known event type", a.typ)
	}
	var knownSource bool
	e.Source, knownSource = d.source(a.source)
	e.ID, e.Subject, e.Type = string(a.id), string(a.subject), typ
	// checkContext's checks, in its order, but a known source's only once.
	if rej := checkID("id", e.ID); rej != nil {
		return rej
	}
	if !knownSource {
		if rej := checkSource(e.Source); rej != nil {
			return rej
		}
		d.rememberSource(e.Source)
	}
	if rej := checkID("subject", e.Subject); rej != nil {
		return rej
	}
	if len(a.time) == 0 {
		return missing("time")
	}
	t, err := parseTimestamp(a.time)
	if err != nil {
		return reject(ReasonInvalidField, "time %.64q is not an RFC 3339 timestamp", a.time)
	}
	e.Time = t
	if rej := checkTime(e.Time); rej != nil {
		return rej
	}
	if rej := d.checkFuture(e.Time); rej != nil {
		return rej
	}
	if a.hasDataContentType && !isJSONMediaType(string(a.dataContentType)) {
		return reject(ReasonInvalidField, "datacontenttype %.64q is not JSON", a.dataContentType)
	}
	return nil
}

// maxNanoSeconds is a Unix time in seconds whose nanoseconds fit an int64.
const maxNanoSeconds = math.MaxInt64/int64(time.Second) - 1

// checkFuture rejects an event time more than MaxFutureSkew ahead of now.
func (d *Decoder) checkFuture(t time.Time) *Rejection {
	// UnixNano is defined only up to the year 2262.
	if t.Unix() < maxNanoSeconds && t.UnixNano() <= d.accepted.Load() {
		return nil
	}
	now := d.clock()
	limit := now.Add(d.maxFutureSkew)
	if t.After(limit) {
		return reject(ReasonFutureDated, "time %s is %s ahead of now, more than the allowed %s",
			t.Format(time.RFC3339Nano), t.Sub(now).Round(time.Millisecond), d.maxFutureSkew)
	}
	// Keep the latest allowance: a goroutine with an older reading must not
	// put it back.
	for n := limit.UnixNano(); ; {
		cur := d.accepted.Load()
		if n <= cur || d.accepted.CompareAndSwap(cur, n) {
			return nil
		}
	}
}

// parseType maps a wire type name to its Type without allocating.
func parseType(b []byte) (Type, bool) {
	switch string(b) {
	case "listen":
		return TypeListen, true
	case "page_view":
		return TypePageView, true
	case "social_post":
		return TypeSocialPost, true
	case "photo_tag":
		return TypePhotoTag, true
	case "follow":
		return TypeFollow, true
	case "ticket_purchase":
		return TypeTicketPurchase, true
	case "merch_purchase":
		return TypeMerchPurchase, true
	case "donation":
		return TypeDonation, true
	case "attendance":
		return TypeAttendance, true
	case "social_graph":
		return TypeSocialGraph, true
	}
	return "", false
}

package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// outEnvelope is the structured-mode form Encode writes. Field order is the
// order the CloudEvents spec lists the attributes in, for readable output.
type outEnvelope struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            Type   `json:"type"`
	Subject         string `json:"subject"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	Data            any    `json:"data"`
}

// Encode returns e as a structured-mode CloudEvents JSON document, the form
// partners publish, that Decode accepts (given a clock late enough for
// e.Time).
//
// Encode applies the validation Decode does, short of the clock check, so a
// simulated partner cannot publish events the consumer would dead-letter by
// accident; a validation error is a *Rejection.
func Encode(e Event) ([]byte, error) {
	if rej := checkContext(e.ID, e.Source, e.Subject); rej != nil {
		return nil, rej
	}
	if e.Time.IsZero() {
		return nil, missing("time")
	}
	// A year past 9999 has no RFC 3339 form.
	if e.Time.UTC().Year() > 9999 {
		return nil, reject(ReasonInvalidField, "time %s is after 9999", e.Time)
	}
	if rej := checkTime(e.Time); rej != nil {
		return nil, rej
	}
	data, rej := payload(&e)
	if rej != nil {
		return nil, rej
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// HTML escaping would only bloat social post text.
	enc.SetEscapeHTML(false)
	err := enc.Encode(outEnvelope{
		SpecVersion:     "1.0",
		ID:              e.ID,
		Source:          e.Source,
		Type:            e.Type,
		Subject:         e.Subject,
		Time:            e.Time.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data:            data,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding event: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// payload returns e's one data struct, validated, checking that it matches
// e.Type.
func payload(e *Event) (any, *Rejection) {
	var (
		data   any
		typ    Type
		rej    *Rejection
		nonNil int
		set    = func(t Type, v any, r *Rejection) {
			nonNil++
			data, typ, rej = v, t, r
		}
	)
	if e.Listen != nil {
		set(TypeListen, e.Listen, validateListen(e.Listen))
	}
	if e.PageView != nil {
		set(TypePageView, e.PageView, validatePageView(e.PageView))
	}
	if e.SocialPost != nil {
		set(TypeSocialPost, e.SocialPost, validateSocialPost(e.SocialPost))
	}
	if e.PhotoTag != nil {
		set(TypePhotoTag, e.PhotoTag, validatePhotoTag(e.PhotoTag))
	}
	if e.Follow != nil {
		set(TypeFollow, e.Follow, validateFollow(e.Follow))
	}
	if e.TicketPurchase != nil {
		set(TypeTicketPurchase, e.TicketPurchase, validateTicketPurchase(e.TicketPurchase))
	}
	if e.MerchPurchase != nil {
		set(TypeMerchPurchase, e.MerchPurchase, validateMerchPurchase(e.MerchPurchase))
	}
	if e.Donation != nil {
		set(TypeDonation, e.Donation, validateDonation(e.Donation))
	}
	if e.Attendance != nil {
		set(TypeAttendance, e.Attendance, validateAttendance(e.Attendance))
	}
	if e.SocialGraph != nil {
		set(TypeSocialGraph, e.SocialGraph, validateSocialGraph(e.SocialGraph))
	}

	switch {
	case !e.Type.Valid():
		return nil, reject(ReasonUnknownType, "type %.64q is not a known event type", e.Type)
	case nonNil == 0:
		return nil, missing("data")
	case nonNil > 1:
		return nil, reject(ReasonInvalidField, "data: %d payloads set, want exactly one", nonNil)
	case typ != e.Type:
		return nil, reject(ReasonInvalidField, "data: payload is for type %s, event has type %s", typ, e.Type)
	}
	return data, rej
}

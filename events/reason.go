package events

import "fmt"

// Reason is a stable snake_case code for why an event was rejected. It is
// used as a metric label and as the dead-letter reason header, so values
// must never change once released. Consumers add reasons of their own (such
// as "unknown_partner"), which is why the type is exported.
type Reason string

// The reasons Decode and Encode report.
const (
	// ReasonMalformed: the value is not a JSON object, or the transport
	// headers are contradictory.
	ReasonMalformed Reason = "malformed"
	// ReasonOversized: the record is larger than DecoderConfig.MaxSize.
	ReasonOversized Reason = "oversized"
	// ReasonSpecVersion: specversion is not "1.0".
	ReasonSpecVersion Reason = "unsupported_specversion"
	// ReasonUnknownType: type is not one of Types.
	ReasonUnknownType Reason = "unknown_type"
	// ReasonMissingField: a required attribute or data field is absent or
	// blank.
	ReasonMissingField Reason = "missing_field"
	// ReasonInvalidField: a field has the wrong JSON type or a value out of
	// range.
	ReasonInvalidField Reason = "invalid_field"
	// ReasonFutureDated: time is further ahead of the decoder's clock than
	// DecoderConfig.MaxFutureSkew.
	ReasonFutureDated Reason = "future_dated"
)

// Rejection is the error Decode returns for bad input. Decode always returns
// a *Rejection, never a bare error, so a consumer can dead-letter with
// errors.As:
//
//	var rej *events.Rejection
//	if errors.As(err, &rej) { dlq(record, rej.Reason) }
type Rejection struct {
	// Reason classifies the rejection.
	Reason Reason
	// Detail names the offending field path (such as "data.venue.lat") and
	// what is wrong with it, for humans reading the dead-letter topic.
	Detail string
}

// Error implements error.
func (r *Rejection) Error() string {
	return string(r.Reason) + ": " + r.Detail
}

func reject(reason Reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

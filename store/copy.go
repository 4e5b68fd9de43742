package store

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/crescendo-hq/crescendo/pipeline"
)

// Postgres's binary COPY format (the COPY page of its manual, "Binary
// Format"): a signature, flags and a header extension length; then per row a
// field count and each field as a length and its bytes; then -1.
//
// pgx's CopyFrom writes the same bytes, but per value it boxes the value in
// an interface and looks up an encode plan: on the bench's drain that was 3%
// of the process's CPU, for the checkpoint's explanation rows alone.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyContributionsSQL takes the rows appendContributionsCopy encodes.
const copyContributionsSQL = `COPY contributions (fan_id, performer_id, signal, points, event_id, at, detail) FROM STDIN (FORMAT binary)`

// postgresEpoch is where timestamptz counts microseconds from.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// appendContributionsCopy appends cs to b as the COPY data of
// copyContributionsSQL, signature and end marker included.
func appendContributionsCopy(b []byte, cs []pipeline.Contribution) []byte {
	b = append(b, copySignature...)
	for _, c := range cs {
		b = binary.BigEndian.AppendUint16(b, 7)
		b = binary.BigEndian.AppendUint32(b, 16)
		b = append(b, c.Fan[:]...)
		b = appendCopyText(b, c.Performer)
		b = appendCopyText(b, string(c.Signal))
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.Points))
		b = appendCopyText(b, c.EventID)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(copyMicros(c.At)))
		b = appendCopyText(b, c.Detail)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

func appendCopyText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// copyMicros is t in microseconds since 2000, truncated as pgx does.
func copyMicros(t time.Time) int64 {
	return (t.Unix()-postgresEpoch)*1_000_000 + int64(t.Nanosecond())/1000
}

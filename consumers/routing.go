package consumers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
)

// A fan's state lives in one partition: the one its home key (the partner user
// id it registered with) maps to. Events of the fan's accounts at other
// partners are keyed by other ids and may land elsewhere; the partition that
// reads one copies it to the fan's home partition of the same topic, marked
// with where it came from. The home partition applies it once: a source routes
// to a partition in offset order and, after a crash, repeats a suffix of what
// it routed, so remembering the last offset applied per source suffices.
//
// The mark is signed with a secret the replicas share, so a producer of raw
// events cannot pass an event off as routed and skew what is skipped.
const (
	headerRoutedFrom = "crescendo-routed-from" // "<partition>:<offset>" of the original record
	headerRoutedSig  = "crescendo-routed-sig"  // HMAC-SHA256 of the mark and the value, truncated

	// ReasonBadRouting dead-letters records that carry a routing mark that
	// does not verify.
	ReasonBadRouting events.Reason = "bad_routing_mark"

	routeChunkBytes = 512 << 10
	routeChunkCount = 500
	sigLen          = 16
)

// Partitioners are the key partitioners a topic's producers may use; Routing
// must name the one partner apps use, so that a fan's own events are already
// where the fan's state lives and only other accounts' events are routed.
var Partitioners = map[string]kafka.Balancer{
	// The Java client's default, and librdkafka's murmur2 partitioners.
	"murmur2": kafka.Murmur2Balancer{Consistent: true},
	// librdkafka's default (consistent_random) for keyed records.
	"crc32": kafka.CRC32Balancer{Consistent: true},
	// FNV-1a: Sarama's and kafka-go's Hash balancer.
	"fnv1a": &kafka.Hash{},
}

type router struct {
	secret   []byte
	balancer kafka.Balancer
	writer   *kafka.Writer
}

func newRouter(brokers []string, topic, partitioner string, secret []byte) (*router, error) {
	b, ok := Partitioners[partitioner]
	if !ok {
		return nil, fmt.Errorf("Partitioner: unknown partitioner %q (want murmur2, crc32 or fnv1a)", partitioner)
	}
	if len(secret) < 16 {
		return nil, errors.New("RoutingSecret: at least 16 bytes are required")
	}
	return &router{
		secret:   secret,
		balancer: b,
		writer: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        topic,
			Balancer:     b,
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond,
			// Each write holds at most one batch per partition (see write).
			BatchSize:  routeChunkCount,
			BatchBytes: 2 * routeChunkBytes,
			Transport:  &kafka.Transport{},
		},
	}, nil
}

func (r *router) close() {
	_ = r.writer.Close()
	r.writer.Transport.(*kafka.Transport).CloseIdleConnections()
}

// here returns whether a fan with the given home key lives in partition p of count.
func (r *router) here(p, count int) func(home string) bool {
	parts := make([]int, count)
	for i := range parts {
		parts[i] = i
	}
	// The closure serves one partition, which has one owner at a time; the
	// buffer spares every event the allocation of its key (the balancer is
	// an interface, so the key escapes).
	var key []byte
	return func(home string) bool {
		key = append(key[:0], home...)
		return r.balancer.Balance(kafka.Message{Key: key}, parts...) == p
	}
}

func (r *router) sign(mark string, value []byte) []byte {
	h := hmac.New(sha256.New, r.secret)
	h.Write([]byte(mark))
	h.Write([]byte{0})
	h.Write(value)
	return h.Sum(nil)[:sigLen]
}

// origin returns where a routed record came from; ok is false for records a
// partner produced. A mark that does not verify is an error.
func (r *router) origin(m kafka.Message) (src int32, offset int64, ok bool, err error) {
	var mark, sig []byte
	for _, h := range m.Headers {
		switch h.Key {
		case headerRoutedFrom:
			mark = h.Value
		case headerRoutedSig:
			sig = h.Value
		}
	}
	if mark == nil && sig == nil {
		return 0, 0, false, nil
	}
	bad := &events.Rejection{Reason: ReasonBadRouting, Detail: "routing mark does not verify"}
	if !hmac.Equal(sig, r.sign(string(mark), m.Value)) {
		return 0, 0, false, bad
	}
	p, o, found := strings.Cut(string(mark), ":")
	pn, perr := strconv.ParseInt(p, 10, 32)
	on, oerr := strconv.ParseInt(o, 10, 64)
	if !found || perr != nil || oerr != nil || pn < 0 || on < 0 {
		return 0, 0, false, bad
	}
	return int32(pn), on, true, nil
}

// copyFor returns the copy of m to route to the partition home maps to.
func (r *router) copyFor(m kafka.Message, home string) kafka.Message {
	mark := strconv.Itoa(m.Partition) + ":" + strconv.FormatInt(m.Offset, 10)
	h := make([]kafka.Header, 0, len(m.Headers)+2)
	h = append(h, m.Headers...)
	h = append(h,
		kafka.Header{Key: headerRoutedFrom, Value: []byte(mark)},
		kafka.Header{Key: headerRoutedSig, Value: r.sign(mark, m.Value)},
	)
	return kafka.Message{Key: []byte(home), Value: m.Value, Headers: h, Time: m.Time}
}

// write routes msgs in order and returns how many it wrote. Each call to the
// writer carries few enough records to make at most one batch per partition,
// and the next call starts only once it succeeded: a later record never lands
// while an earlier one to the same partition is still missing, which the
// receiving side relies on.
func (r *router) write(ctx context.Context, msgs []kafka.Message) (int, error) {
	written := 0
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && n < routeChunkCount {
			s := len(msgs[n].Key) + len(msgs[n].Value) + 64
			for _, h := range msgs[n].Headers {
				s += len(h.Key) + len(h.Value) + 16
			}
			if n > 0 && size+s > routeChunkBytes {
				break
			}
			size += s
			n++
		}
		if err := r.writer.WriteMessages(ctx, msgs[:n]...); err != nil {
			return written, err
		}
		msgs, written = msgs[n:], written+n
	}
	return written, nil
}

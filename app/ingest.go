package app

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/consumers"
	"github.com/crescendo-hq/crescendo/ingest"
)

// producer writes partners' HTTP-posted events to the activity topic with
// the partitioner partner apps use, so they land where Kafka-produced events
// of the same user do.
type producer struct{ w *kafka.Writer }

func newProducer(brokers []string, topic, partitioner string) (*producer, error) {
	b, ok := consumers.Partitioners[cmp.Or(partitioner, "murmur2")] // the consumer's default too
	if !ok {
		return nil, fmt.Errorf("unknown partitioner %q", partitioner)
	}
	return &producer{w: &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, Balancer: b, RequiredAcks: kafka.RequireAll,
		// The partner waits for the answer: do not hold records for a batch to fill.
		BatchTimeout: 2 * time.Millisecond, BatchSize: 1000, Transport: &kafka.Transport{},
	}}, nil
}

// Produce writes every record or returns an error.
func (p *producer) Produce(ctx context.Context, records []ingest.Record) error {
	msgs := make([]kafka.Message, len(records))
	for i, r := range records {
		msgs[i] = kafka.Message{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	return p.w.WriteMessages(ctx, msgs...)
}

func (p *producer) close() {
	_ = p.w.Close()
	p.w.Transport.(*kafka.Transport).CloseIdleConnections()
}

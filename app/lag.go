package app

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/store"
)

// lagSource measures consumer lag against the offsets checkpointed in
// Postgres, the ones that count (Kafka's copy is committed at most once a
// second, for external tools such as KEDA's scaler).
type lagSource struct {
	client       *kafka.Client
	store        *store.Store
	group, topic string
}

func newLagSource(brokers []string, st *store.Store, group, topic string) *lagSource {
	return &lagSource{
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 2 * time.Second, Transport: &kafka.Transport{}},
		store:  st, group: group, topic: topic,
	}
}

// Lag returns, per partition, the records after its last checkpoint.
func (l *lagSource) Lag(ctx context.Context, partitions []int) (map[int]int64, error) {
	stored, err := l.store.StoredOffsets(ctx, l.group, l.topic)
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range partitions {
		req.Topics[l.topic] = append(req.Topics[l.topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := l.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("listing log offsets: %w", err)
	}
	out := make(map[int]int64, len(partitions))
	for _, po := range resp.Topics[l.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing offsets of partition %d: %w", po.Partition, po.Error)
		}
		next, ok := stored[po.Partition]
		if !ok || next < po.FirstOffset { // never checkpointed, or retention passed it
			next = po.FirstOffset
		}
		out[po.Partition] = max(po.LastOffset-next, 0)
	}
	return out, nil
}

func (l *lagSource) close() { l.client.Transport.(*kafka.Transport).CloseIdleConnections() }

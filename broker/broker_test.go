package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/broker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	topic      = "fan-activity"
	dlq        = "fan-activity.dlq"
	partitions = 12
)

var topics = []broker.TopicSpec{{Name: topic, Partitions: partitions}, {Name: dlq, Partitions: 1}}

func start(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	b, err := broker.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// testCtx bounds a test, so that a client waiting on a broker that will not
// answer fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newWriter returns a writer set up as doc.go advises: a short BatchTimeout
// (the default of 1s makes every synchronous write take a second) and acks
// from all replicas.
//
// The writer has its own Transport, closed with it: with the default one,
// kafka-go keeps idle connections and their goroutines after Close, which
// goleak reports.
func newWriter(t *testing.T, b *broker.Broker, topic string) *kafka.Writer {
	transport := &kafka.Transport{}
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addrs()...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		Transport:    transport,
	}
	t.Cleanup(func() {
		w.Close()
		transport.CloseIdleConnections()
	})
	return w
}

// record is what a test checks of a message.
type record struct {
	partition int
	key       string
	value     string
	headers   string
}

func recordOf(m kafka.Message) record {
	r := record{partition: m.Partition, key: string(m.Key), value: string(m.Value)}
	for _, h := range m.Headers {
		r.headers += fmt.Sprintf("%s=%q;", h.Key, h.Value)
	}
	return r
}

// writeRecords writes n records keyed by 25 users, each with headers.
func writeRecords(t *testing.T, ctx context.Context, b *broker.Broker, n int) map[string]record {
	t.Helper()
	w := newWriter(t, b, topic)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   fmt.Appendf(nil, "user-%d", i%25),
			Value: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: []kafka.Header{
				{Key: "ce_id", Value: fmt.Appendf(nil, "evt-%d", i)},
				{Key: "ce_type", Value: []byte("listen")},
				{Key: "empty", Value: nil},
				{Key: "binary", Value: []byte{0, 0xff, '\n'}},
			},
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	want := make(map[string]record, n)
	for _, m := range msgs {
		r := recordOf(m)
		r.partition = -1 // the balancer's choice; checked separately
		want[r.value] = r
	}
	return want
}

// readPartition reads partition p of topic from offset from to its end.
func readPartition(t *testing.T, ctx context.Context, b *broker.Broker, topic string, p int, from int64) []kafka.Message {
	t.Helper()
	conn, err := kafka.DialLeader(ctx, "tcp", b.Addrs()[0], topic, p)
	if err != nil {
		t.Fatalf("DialLeader %s/%d: %v", topic, p, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		t.Fatalf("ReadOffsets %s/%d: %v", topic, p, err)
	}
	if from == kafka.FirstOffset {
		from = first
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   b.Addrs(),
		Topic:     topic,
		Partition: p,
		// kafka-go checks MinBytes against MaxBytes before defaulting
		// MaxBytes, so setting one needs the other.
		MinBytes: 1,
		MaxBytes: 10 << 20,
		MaxWait:  50 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for off := from; off < last; off++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("ReadMessage %s/%d at %d of %d: %v", topic, p, off, last, err)
		}
		if m.Offset != off {
			t.Fatalf("read offset %d, want %d", m.Offset, off)
		}
		out = append(out, m)
	}
	return out
}

// readAll reads every partition of topic from the given offsets (FirstOffset
// where absent) and checks that each key stayed in one partition.
func readAll(t *testing.T, ctx context.Context, b *broker.Broker, from map[int]int64) map[string]record {
	t.Helper()
	got := map[string]record{}
	keyPartition := map[string]int{}
	for p := range partitions {
		off, ok := from[p]
		if !ok {
			off = kafka.FirstOffset
		}
		for _, m := range readPartition(t, ctx, b, topic, p, off) {
			if m.Partition != p {
				t.Fatalf("message from partition %d read from %d", m.Partition, p)
			}
			if kp, ok := keyPartition[string(m.Key)]; ok && kp != p {
				t.Errorf("key %s in partitions %d and %d", m.Key, kp, p)
			}
			keyPartition[string(m.Key)] = p
			r := recordOf(m)
			r.partition = -1
			got[r.value] = r
		}
	}
	return got
}

// joinGroup joins group and returns its first generation's offsets for
// topic, checking that this only member was assigned every partition.
func joinGroup(t *testing.T, ctx context.Context, b *broker.Broker, group string) (*kafka.ConsumerGroup, *kafka.Generation, map[int]int64) {
	t.Helper()
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:      group,
		Brokers: b.Addrs(),
		Topics:  []string{topic},
		// The defaults (30s session, 3s heartbeats) would be fine; shorter
		// ones keep a failing test from idling. kfake's minimum session
		// timeout is 6s.
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		HeartbeatInterval: time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
	})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := cg.Next(ctx)
	if err != nil {
		cg.Close()
		t.Fatalf("joining group: %v", err)
	}
	offsets := map[int]int64{}
	for _, a := range gen.Assignments[topic] {
		offsets[a.ID] = a.Offset
	}
	if got := slices.Sorted(maps.Keys(offsets)); !slices.Equal(got, seq(partitions)) {
		cg.Close()
		t.Fatalf("assigned partitions %v, want all %d", got, partitions)
	}
	return cg, gen, offsets
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestRestartKeepsRecordsAndOffsets is the broker's contract with the
// product: what kafka-go writes and commits survives a restart on the same
// DataDir.
func TestRestartKeepsRecordsAndOffsets(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	const n = 300

	b := start(t, broker.Config{DataDir: dir, Topics: topics})
	want := writeRecords(t, ctx, b, n)

	got := readAll(t, ctx, b, nil)
	if !maps.Equal(got, want) {
		t.Fatalf("read %d records, wrote %d; first differences: %v", len(got), len(want), diff(got, want))
	}

	// A new group starts at the first offset of every partition; commit
	// half of each partition as consumed.
	cg, gen, offsets := joinGroup(t, ctx, b, "crescendo-test")
	commits := map[int]int64{}
	for p, off := range offsets {
		if off != kafka.FirstOffset {
			t.Errorf("fresh group starts partition %d at %d, want FirstOffset", p, off)
		}
		commits[p] = int64(len(readPartition(t, ctx, b, topic, p, kafka.FirstOffset)) / 2)
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{topic: commits}); err != nil {
		t.Fatalf("CommitOffsets: %v", err)
	}
	if err := cg.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same directory, with one more topic configured and
	// the DLQ asked for with another partition count: existing topics
	// must be kept as they are, the new one created.
	b.Close()
	b.Close() // safe twice
	b2 := start(t, broker.Config{DataDir: dir, Topics: []broker.TopicSpec{
		{Name: topic, Partitions: partitions},
		{Name: dlq, Partitions: 3},
		{Name: "later", Partitions: 2},
	}})

	got = readAll(t, ctx, b2, nil)
	if !maps.Equal(got, want) {
		t.Fatalf("after restart read %d records, wrote %d; first differences: %v", len(got), len(want), diff(got, want))
	}

	cg2, _, offsets2 := joinGroup(t, ctx, b2, "crescendo-test")
	defer cg2.Close()
	if !maps.Equal(offsets2, commits) {
		t.Errorf("after restart group offsets %v, committed %v", offsets2, commits)
	}
	// And a consumer resuming there sees exactly the rest.
	rest := readAll(t, ctx, b2, offsets2)
	var wantRest int
	for p, off := range commits {
		wantRest += len(readPartition(t, ctx, b2, topic, p, kafka.FirstOffset)) - int(off)
	}
	if len(rest) != wantRest || wantRest == 0 {
		t.Errorf("resumed read %d records, want %d", len(rest), wantRest)
	}

	for name, want := range map[string]int{topic: partitions, dlq: 1, "later": 2} {
		if got := countPartitions(t, ctx, b2, name); got != want {
			t.Errorf("topic %s has %d partitions, want %d", name, got, want)
		}
	}
}

func countPartitions(t *testing.T, ctx context.Context, b *broker.Broker, topic string) int {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("ReadPartitions %s: %v", topic, err)
	}
	return len(ps)
}

func diff(got, want map[string]record) []string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+k)
		} else if g != w {
			out = append(out, fmt.Sprintf("got %+v want %+v", g, w))
		}
		if len(out) == 3 {
			break
		}
	}
	return out
}

// TestHeadersRoundTrip checks headers, keys and empty values through a
// single-partition topic, as the DLQ uses them.
func TestHeadersRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	b := start(t, broker.Config{Topics: topics})
	w := newWriter(t, b, dlq)
	msgs := []kafka.Message{
		{Key: []byte("user-1"), Value: []byte("not json"), Headers: []kafka.Header{
			{Key: "reason", Value: []byte("malformed")},
			{Key: "detail", Value: []byte("value is not a JSON object")},
			{Key: "ce_id", Value: []byte("é\x00\xff")},
		}},
		{Key: nil, Value: nil, Headers: []kafka.Header{{Key: "reason", Value: []byte("oversized")}, {Key: "reason", Value: []byte("again")}}},
		{Key: []byte("user-2"), Value: []byte("{}")},
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	got := readPartition(t, ctx, b, dlq, 0, kafka.FirstOffset)
	if len(got) != len(msgs) {
		t.Fatalf("read %d messages, wrote %d", len(got), len(msgs))
	}
	for i := range msgs {
		g, w := recordOf(got[i]), recordOf(msgs[i])
		w.partition = 0
		if g != w {
			t.Errorf("message %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestInMemory(t *testing.T) {
	ctx := testCtx(t)
	b := start(t, broker.Config{Topics: topics})
	want := writeRecords(t, ctx, b, 20)
	if got := readAll(t, ctx, b, nil); !maps.Equal(got, want) {
		t.Fatalf("read %v, want %v", diff(got, want), want)
	}
	b.Close()

	// Without a DataDir a restart starts empty.
	b2 := start(t, broker.Config{Topics: topics})
	if got := readAll(t, ctx, b2, nil); len(got) != 0 {
		t.Errorf("fresh in-memory broker has %d records", len(got))
	}
}

func TestUnknownTopicIsNotCreated(t *testing.T) {
	ctx := testCtx(t)
	b := start(t, broker.Config{Topics: topics})
	w := newWriter(t, b, "typo")
	// kafka-go retries unknown topics until its deadline.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := w.WriteMessages(wctx, kafka.Message{Value: []byte("x")})
	if err == nil {
		t.Fatal("wrote to a topic that was never configured")
	}
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("write error: %v, want %v", err, kafka.UnknownTopicOrPartition)
	}
}

func TestStartValidates(t *testing.T) {
	for _, cfg := range []broker.Config{
		{Addr: "nonsense"},
		{AdvertisedAddr: "host-without-port"},
		{Topics: []broker.TopicSpec{{Name: ""}}},
		{Topics: []broker.TopicSpec{{Name: "a b"}}},
		{Topics: []broker.TopicSpec{{Name: ".."}}},
		{Topics: []broker.TopicSpec{{Name: "t", Partitions: -1}}},
		{Topics: []broker.TopicSpec{{Name: "t"}, {Name: "t"}}},
	} {
		if cfg.Addr == "" {
			cfg.Addr = "127.0.0.1:0"
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
		if b, err := broker.Start(t.Context(), cfg); err == nil {
			b.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if b, err := broker.Start(ctx, broker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, context.Canceled) {
		if b != nil {
			b.Close()
		}
		t.Errorf("Start with a canceled context: %v", err)
	}

	// A taken port is an error, not a panic or a hang.
	b := start(t, broker.Config{})
	if b2, err := broker.Start(t.Context(), broker.Config{Addr: b.Addrs()[0], Logger: slog.New(slog.DiscardHandler)}); err == nil {
		b2.Close()
		t.Error("two brokers on one port")
	}
}

func TestAdvertisedAddr(t *testing.T) {
	b := start(t, broker.Config{AdvertisedAddr: "kafka.internal:19092"})
	if got := b.Addrs(); !slices.Equal(got, []string{"kafka.internal:19092"}) {
		t.Errorf("Addrs() = %v", got)
	}

	// All interfaces advertise loopback unless told otherwise.
	all, err := broker.Start(t.Context(), broker.Config{Addr: "0.0.0.0:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	host, _, _ := strings.Cut(all.Addrs()[0], ":")
	if host != "127.0.0.1" {
		t.Errorf("Addrs() = %v, want 127.0.0.1", all.Addrs())
	}
}

// TestConsumerGroupScaleOut checks that a second member takes half the
// partitions and gives them back when it leaves, as the product scales out.
func TestConsumerGroupScaleOut(t *testing.T) {
	ctx := testCtx(t)
	b := start(t, broker.Config{Topics: topics})

	type generation struct {
		member     string
		partitions []int
	}
	gens := make(chan generation)
	// member runs a group member that reports each generation's partitions
	// and holds it until the group rebalances, as a consumer would.
	member := func(name string) *kafka.ConsumerGroup {
		cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
			ID:      "scale-out",
			Brokers: b.Addrs(),
			Topics:  []string{topic},
			// A rebalance starts for the existing member at its next
			// heartbeat; the default interval of 3s makes that the
			// slowest part of a join.
			HeartbeatInterval: 100 * time.Millisecond,
			SessionTimeout:    6 * time.Second,
			RebalanceTimeout:  5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				gen, err := cg.Next(ctx)
				if err != nil {
					return // closed, or the test is over
				}
				var ps []int
				for _, a := range gen.Assignments[topic] {
					ps = append(ps, a.ID)
				}
				slices.Sort(ps)
				select {
				case gens <- generation{name, ps}:
				case <-ctx.Done():
					return
				}
				gen.Start(func(ctx context.Context) { <-ctx.Done() })
			}
		}()
		return cg
	}
	next := func() generation {
		t.Helper()
		select {
		case g := <-gens:
			return g
		case <-ctx.Done():
			t.Fatal("no new generation")
			return generation{}
		}
	}

	a := member("a")
	defer a.Close()
	if g := next(); g.member != "a" || !slices.Equal(g.partitions, seq(partitions)) {
		t.Fatalf("first member got %+v, want all partitions", g)
	}

	c := member("c")
	got := map[string][]int{}
	for len(got) < 2 {
		g := next()
		got[g.member] = g.partitions
	}
	if len(got["a"]) != partitions/2 || len(got["c"]) != partitions/2 {
		t.Errorf("after scale-out a has %v and c has %v, want half each", got["a"], got["c"])
	}
	if all := slices.Sorted(slices.Values(append(slices.Clone(got["a"]), got["c"]...))); !slices.Equal(all, seq(partitions)) {
		t.Errorf("after scale-out partitions %v, want each exactly once", all)
	}

	// Close sends LeaveGroup, so the partitions move back without waiting
	// out the session timeout.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if g := next(); g.member != "a" || !slices.Equal(g.partitions, seq(partitions)) {
		t.Fatalf("after scale-in got %+v, want a with all partitions", g)
	}
}

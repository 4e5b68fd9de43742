package consumers

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const fetchTopic = "activity"

func startBroker(t *testing.T, addr, dataDir string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{Addr: addr, DataDir: dataDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Topics: []broker.TopicSpec{{Name: fetchTopic, Partitions: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produce writes records whose values are their sequence numbers from..to-1.
func produce(t *testing.T, addrs []string, from, to int) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: fetchTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		BatchSize: 1000, Transport: tr}
	defer func() { _ = w.Close() }()
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: []byte(strconv.Itoa(i))})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func testFetcher(t *testing.T, addrs []string, offset int64) *fetcher {
	t.Helper()
	f := startFetcher(context.Background(), fetcherConfig{Brokers: addrs, Topic: fetchTopic, MaxBytes: 64 << 10, MaxWait: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), backoffMin: 10 * time.Millisecond, backoffMax: 100 * time.Millisecond}, offset)
	t.Cleanup(f.close)
	return f
}

// expect reads the records from..to-1 and checks each offset and value.
func expect(t *testing.T, f *fetcher, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		m, err := f.next(ctx)
		if err != nil {
			t.Fatalf("reading record %d: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != strconv.Itoa(i) || m.Topic != fetchTopic || m.Partition != 0 {
			t.Fatalf("record %d: got offset %d value %q topic %q partition %d", i, m.Offset, m.Value, m.Topic, m.Partition)
		}
	}
}

// TestFetcherReadsFromAnOffsetAndWaitsAtTheEnd reads across many fetches
// (64 KiB each) from a given offset, then past the end as records arrive.
func TestFetcherReadsFromAnOffsetAndWaitsAtTheEnd(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", "")
	defer b.Close()
	produce(t, b.Addrs(), 0, 20_000)
	f := testFetcher(t, b.Addrs(), 1234)
	expect(t, f, 1234, 20_000)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if m, err := f.next(ctx); err == nil {
		t.Fatalf("read offset %d past the end of the log", m.Offset)
	}
	produce(t, b.Addrs(), 20_000, 20_100)
	expect(t, f, 20_000, 20_100)
}

func TestFetcherFromFirstOffset(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", "")
	defer b.Close()
	produce(t, b.Addrs(), 0, 100)
	expect(t, testFetcher(t, b.Addrs(), kafka.FirstOffset), 0, 100)
}

// TestFetcherCloseEndsAWaitingFetch closes a fetcher whose fetch the broker
// holds open (MaxWait far longer than the test): close must not wait it out.
func TestFetcherCloseEndsAWaitingFetch(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", "")
	defer b.Close()
	produce(t, b.Addrs(), 0, 10)
	f := startFetcher(context.Background(), fetcherConfig{Brokers: b.Addrs(), Topic: fetchTopic, MaxWait: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, 0)
	expect(t, f, 0, 10) // the next fetch now waits at the end
	closed := make(chan struct{})
	go func() {
		f.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close waited for the broker's fetch")
	}
}

// TestFetcherSurvivesABrokerRestart reads on where it was, with nothing
// lost or repeated, after the broker goes away and comes back.
func TestFetcherSurvivesABrokerRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, "127.0.0.1:0", dir)
	addr := b.Addrs()[0]
	produce(t, b.Addrs(), 0, 500)
	f := testFetcher(t, []string{addr}, 0)
	expect(t, f, 0, 500)
	b.Close()

	b = startBroker(t, addr, dir)
	defer b.Close()
	produce(t, b.Addrs(), 500, 1000)
	expect(t, f, 500, 1000)
}

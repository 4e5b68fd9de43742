// Package broker runs an embedded, single-node Kafka-protocol broker for
// development and demos (F21), so `crescendo demo` needs no Kafka cluster.
// It wraps github.com/twmb/franz-go/pkg/kfake; production uses real Kafka
// and the same client code.
//
//	b, err := broker.Start(ctx, broker.Config{
//		DataDir: "/var/lib/crescendo/kafka",
//		Topics: []broker.TopicSpec{
//			{Name: "fan-activity", Partitions: 12},
//			{Name: "fan-activity.dlq", Partitions: 1},
//		},
//	})
//	defer b.Close()
//	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), ...}
//
// # Persistence
//
// With a DataDir, kfake writes records, topics and committed group offsets
// to disk and reloads them on Start. Records are written to files as they
// are produced but fsynced only on segment roll and Close, like Kafka's
// defaults (kfake.SyncWrites would fsync every batch), so an OS crash can
// lose the latest writes; consumers' exactly-once guarantees must come from
// their own offset checkpoints, not from the broker. kfake seeds topics
// only into an empty DataDir, so Start creates the configured topics that are
// missing itself and leaves existing ones, data and partition count, alone.
//
// Topics are never created on demand: a write to an unconfigured topic fails
// with UNKNOWN_TOPIC_OR_PARTITION straight away, as a typo should.
//
// # kafka-go with this broker
//
// Observed with github.com/segmentio/kafka-go v0.4.51 in this package's tests
// (in memory, on a shared 2-core machine, 300-byte values):
//
//   - Writer.BatchTimeout defaults to 1s, and a synchronous WriteMessages
//     with fewer than BatchSize (default 100) messages waits all of it: one
//     message took 1.004s. Use a few milliseconds (the tests use 5ms), and
//     a BatchSize near the expected batch, e.g. 1000. Writing 300,000
//     messages in calls of 10,000 with BatchSize 1000 and RequiredAcks all
//     ran at 300,000-500,000 messages/s.
//   - Writer.RequiredAcks: kafka.RequireAll costs nothing here (one
//     replica) and is what production needs, so use it everywhere.
//   - Give each Writer its own kafka.Transport and call
//     CloseIdleConnections after Close: the shared DefaultTransport keeps
//     idle connection goroutines, which goleak reports.
//   - Reader: kafka-go checks MinBytes against MaxBytes before it fills in
//     defaults, so setting MinBytes alone panics ("minimum batch size
//     greater than the maximum"); set both. MinBytes 1 returns each fetch as
//     soon as any record is there, which F5's milliseconds need; under load
//     fetches fill up anyway. MaxWait (default 10s) then only bounds an idle
//     fetch. Twelve partition Readers (MinBytes 1, MaxWait 50ms) together
//     read about 300,000 messages/s.
//   - ConsumerGroup: a single member's join completes at once. When a
//     member joins or leaves, the others learn of the rebalance at their
//     next heartbeat, so HeartbeatInterval (default 3s) is the rebalance
//     latency: 3.0s with the default, 0.2s with 200ms. A member that Closes
//     sends LeaveGroup and its partitions move within a heartbeat; one that
//     dies without leaving holds them for SessionTimeout (default 30s).
//     kfake, like Kafka, rejects session timeouts under 6s, so 6-10s with a
//     heartbeat of a few hundred ms is the fast end. RebalanceTimeout
//     (default 30s) bounds how long a rebalance waits for slow members.
//   - Generation.Assignments carries each partition's committed offset, or
//     the ConsumerGroupConfig.StartOffset (default FirstOffset) for a
//     partition never committed; Generation.CommitOffsets commits the offset
//     of the next record to read. Both survive a broker restart on the same
//     DataDir. CommitOffsets is a network round trip, so batch commits.
//   - A ConsumerGroup hands out one Generation at a time and the next only
//     after every function given to Generation.Start has returned: partition
//     workers must watch their context and stop promptly.
package broker

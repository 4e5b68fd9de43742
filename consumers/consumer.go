// Package consumers reads the activity topic with a kafka-go consumer group and
// runs each assigned partition through the pipeline, checkpointing state, new
// offers and the next offset in one Postgres transaction per batch.
//
// Offsets live in Postgres, not in Kafka's group coordinator: a partition's new
// owner resumes exactly where the last durable checkpoint left it, and a stale
// owner (a zombie after a rebalance) is fenced because its checkpoint expects an
// offset that has moved. Offsets are also committed to Kafka after each
// checkpoint, only so that lag tools see progress.
package consumers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/store"
)

// Checkpointer loads and durably checkpoints partition state.
type Checkpointer interface {
	LoadPartition(ctx context.Context, p store.PartitionID) (pipeline.State, int64, error)
	Commit(ctx context.Context, c store.Checkpoint) ([]uuid.UUID, error)
}

// Recomputes reports the newest request to recompute every partition's
// index (0 for none); an owner answers each new one once.
type Recomputes interface {
	RecomputeRequested() int64
}

// Erasures reports erased fans with a version that changes when the set may have.
type Erasures interface {
	Erased() (fans map[uuid.UUID]struct{}, version uint64)
}

// Config configures a Consumer.
type Config struct {
	Brokers  []string
	Topic    string // default "fan-activity"
	DLQTopic string // default Topic + ".dlq"
	GroupID  string // default "crescendo"

	Decoder   *events.Decoder
	Directory pipeline.Directory
	Scorers   pipeline.Scorers
	// Erasures, when set, tells partition owners which fans were erased (F3):
	// they drop those fans' state and write a snapshot without them.
	Erasures     Erasures
	Rules        pipeline.RuleSet
	Checkpointer Checkpointer

	// Partitioner names the key partitioner partner apps produce with:
	// murmur2 (default), crc32 or fnv1a (see Partitioners).
	Partitioner string
	// RoutingSecret signs records routed to a fan's home partition; every
	// member of the group must use the same one. At least 16 bytes.
	RoutingSecret []byte

	// BatchSize bounds the events per checkpoint; default 5000.
	BatchSize int
	// BatchLinger is how long a batch waits for more events once it has one;
	// it bounds how late an offer becomes durable. Default 20ms.
	BatchLinger time.Duration
	SessionGap  time.Duration

	// Group membership timing; kafka-go's defaults when zero.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	JoinGroupBackoff  time.Duration

	// SnapshotEvery is how many checkpoints append deltas to a partition's state
	// log before one writes a snapshot in its place; it bounds the log a new owner
	// reads. The first checkpoint after a load always snapshots. Default 64.
	SnapshotEvery int

	// Recomputes, when set, asks partition owners to recompute: fold decay
	// into their pair states and snapshot them (F5). The scheduled
	// index-recompute job makes the requests.
	Recomputes Recomputes

	// CheckpointTimeout bounds the final checkpoint when a partition is given up.
	CheckpointTimeout time.Duration // default 15s
	// RetryBackoff is the first wait after a failed load or checkpoint; it doubles up to 5s.
	RetryBackoff time.Duration // default 100ms

	// ObserveApply, when set, receives for every 8th event read (a sample: two
	// clock reads per event cost more than the index update on some hosts) the time from
	// reading it to the index reflecting it (benchmarks and metrics).
	ObserveApply func(time.Duration)
	// ObserveRead, when set, receives after each batch how many of its records
	// were of each event type; t is "" for records that did not decode. Counts
	// are kept per batch, so metrics cost no shared write per event.
	ObserveRead func(t events.Type, n int)

	Logger *slog.Logger
	Clock  func() time.Time
}

// Stats are running totals since the consumer started.
type Stats struct {
	Read         int64 // records read
	Applied      int64 // events applied to the index
	Dropped      int64 // events for unlinked or unconsented accounts
	DeadLettered int64
	OffersIssued int64 // offers newly inserted by checkpoints
	Checkpoints  int64
	Fenced       int64
	Routed       int64 // records copied to their fan's home partition
	RoutedIn     int64 // routed records applied here
	RoutedRepeat int64 // routed records skipped as already applied
	// CheckpointTime is the time spent in successful checkpoint commits, summed over partitions.
	CheckpointTime time.Duration
	// Contributions is how many explanation rows (F6) checkpoints wrote.
	Contributions int64
	// FirstRead is when this consumer read its first record; zero before.
	FirstRead time.Time
}

// Consumer is a member of the consumer group.
type Consumer struct {
	cfg    Config
	logger *slog.Logger
	dlq    *kafka.Writer
	router *router

	read, applied, dropped, dead, offersIssued, checkpoints, fenced, checkpointNanos, contributions, firstRead, routed, routedIn, routedRepeat atomic.Int64

	mu        sync.Mutex
	assigned  map[int]struct{}
	byReason  map[events.Reason]int64
	droppedBy map[string]int64
}

// New validates cfg and returns a consumer; Run starts it.
func New(cfg Config) (*Consumer, error) {
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("Brokers: at least one broker is required"))
	}
	if cfg.Decoder == nil {
		errs = append(errs, errors.New("Decoder: required"))
	}
	if cfg.Directory == nil {
		errs = append(errs, errors.New("Directory: required"))
	}
	if cfg.Rules == nil {
		errs = append(errs, errors.New("Rules: required"))
	}
	if cfg.Scorers == nil {
		errs = append(errs, errors.New("Scorers: required"))
	}
	if cfg.Checkpointer == nil {
		errs = append(errs, errors.New("Checkpointer: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	cfg.Topic = cmp.Or(cfg.Topic, "fan-activity")
	cfg.DLQTopic = cmp.Or(cfg.DLQTopic, cfg.Topic+".dlq")
	cfg.GroupID = cmp.Or(cfg.GroupID, "crescendo")
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 5000)
	cfg.BatchLinger = cmp.Or(cfg.BatchLinger, 20*time.Millisecond)
	cfg.CheckpointTimeout = cmp.Or(cfg.CheckpointTimeout, 15*time.Second)
	cfg.SnapshotEvery = cmp.Or(cfg.SnapshotEvery, 64)
	cfg.RetryBackoff = cmp.Or(cfg.RetryBackoff, 100*time.Millisecond)
	cfg.Partitioner = cmp.Or(cfg.Partitioner, "murmur2")
	rt, err := newRouter(cfg.Brokers, cfg.Topic, cfg.Partitioner, cfg.RoutingSecret)
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	logger := cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "consumer"))
	return &Consumer{
		cfg:    cfg,
		logger: logger,
		router: rt,
		dlq: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Topic:        cfg.DLQTopic,
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			// Dead letters are rare and written synchronously before a checkpoint:
			// kafka-go's default 1s batch timeout would stall the partition.
			BatchTimeout: 2 * time.Millisecond,
			// An own transport, closed with the consumer: the shared default one
			// keeps connection-pool goroutines alive for the life of the process.
			Transport: &kafka.Transport{},
		},
		assigned:  make(map[int]struct{}),
		byReason:  make(map[events.Reason]int64),
		droppedBy: make(map[string]int64),
	}, nil
}

// Stats returns running totals.
func (c *Consumer) Stats() Stats {
	return Stats{
		Read: c.read.Load(), Applied: c.applied.Load(), Dropped: c.dropped.Load(),
		DeadLettered: c.dead.Load(), OffersIssued: c.offersIssued.Load(),
		Checkpoints: c.checkpoints.Load(), Fenced: c.fenced.Load(),
		CheckpointTime: time.Duration(c.checkpointNanos.Load()),
		Contributions:  c.contributions.Load(),
		FirstRead:      unixNanoTime(c.firstRead.Load()),
		Routed:         c.routed.Load(), RoutedIn: c.routedIn.Load(), RoutedRepeat: c.routedRepeat.Load(),
	}
}

// DeadLetteredByReason returns dead-letter counts by reason.
func (c *Consumer) DeadLetteredByReason() map[events.Reason]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[events.Reason]int64, len(c.byReason))
	for k, v := range c.byReason {
		out[k] = v
	}
	return out
}

// DroppedByReason returns dropped-event counts by reason.
func (c *Consumer) DroppedByReason() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.droppedBy))
	for k, v := range c.droppedBy {
		out[k] = v
	}
	return out
}

// Assigned returns the partitions this member owns now.
func (c *Consumer) Assigned() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, 0, len(c.assigned))
	for p := range c.assigned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Run joins the group and consumes until ctx is done. On return every owned
// partition has checkpointed what it read and the member has left the group.
func (c *Consumer) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    c.cfg.GroupID,
		Brokers:               c.cfg.Brokers,
		Topics:                []string{c.cfg.Topic},
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      c.cfg.RebalanceTimeout,
		HeartbeatInterval:     c.cfg.HeartbeatInterval,
		JoinGroupBackoff:      c.cfg.JoinGroupBackoff,
		WatchPartitionChanges: true,
		StartOffset:           kafka.FirstOffset,
	})
	if err != nil {
		return fmt.Errorf("joining consumer group: %w", err)
	}
	defer func() {
		_ = c.dlq.Close()
		c.dlq.Transport.(*kafka.Transport).CloseIdleConnections()
		c.router.close()
	}()
	// Close ends the current generation, waits for its partition workers (which
	// checkpoint on the way out) and leaves the group.
	defer func() { _ = group.Close() }()

	backoff := c.cfg.RetryBackoff
	for {
		gen, err := group.Next(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed):
			return nil
		case err != nil:
			c.logger.WarnContext(ctx, "joining generation", slog.Any("error", err))
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = c.cfg.RetryBackoff
		assignments := gen.Assignments[c.cfg.Topic]
		c.logger.InfoContext(ctx, "generation started", slog.Int("generation", int(gen.ID)), slog.Int("partitions", len(assignments)))
		kc := &kafkaCommits{pending: map[int]int64{}}
		for _, a := range assignments {
			kc.workers.Add(1)
			gen.Start(func(gctx context.Context) {
				defer kc.workers.Done()
				c.runPartition(gctx, kc, a.ID)
			})
		}
		gen.Start(func(gctx context.Context) { kc.run(gctx, gen, c.cfg.Topic, time.Second) })
	}
}

// kafkaCommits gathers a generation's durable offsets and commits them to
// Kafka from one goroutine, once a period, all partitions in one request.
// Kafka's copy is only for lag tools; Postgres holds the offsets that count.
// Each partition committing its own on the generation's shared coordinator
// connection had kafka-go's readers of that connection spin, waiting for
// one another's replies: 5% of the bench's CPU.
type kafkaCommits struct {
	mu      sync.Mutex
	pending map[int]int64
	// workers are the generation's partition owners: the last commit waits
	// for their final checkpoints.
	workers sync.WaitGroup
}

// note records that partition is durable up to offset.
func (k *kafkaCommits) note(partition int, offset int64) {
	k.mu.Lock()
	k.pending[partition] = offset
	k.mu.Unlock()
}

// run commits what was noted every period, and once more when the
// generation ends and its partition owners are done.
func (k *kafkaCommits) run(ctx context.Context, gen *kafka.Generation, topic string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			k.flush(gen, topic)
		case <-ctx.Done():
			k.workers.Wait()
			k.flush(gen, topic)
			return
		}
	}
}

func (k *kafkaCommits) flush(gen *kafka.Generation, topic string) {
	k.mu.Lock()
	offsets := k.pending
	k.pending = map[int]int64{}
	k.mu.Unlock()
	if len(offsets) > 0 {
		_ = gen.CommitOffsets(map[string]map[int]int64{topic: offsets})
	}
}

func (c *Consumer) setAssigned(p int, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.assigned[p] = struct{}{}
	} else {
		delete(c.assigned, p)
	}
}

// runPartition owns one partition for the life of a generation, reloading from
// durable state whenever its in-memory state may be stale.
func (c *Consumer) runPartition(ctx context.Context, kc *kafkaCommits, partition int) {
	c.setAssigned(partition, true)
	defer c.setAssigned(partition, false)
	pid := store.PartitionID{Group: c.cfg.GroupID, Topic: c.cfg.Topic, Partition: partition}
	log := c.logger.With(slog.Int("partition", partition))
	backoff := c.cfg.RetryBackoff
	for ctx.Err() == nil {
		err := c.consume(ctx, kc, pid, log)
		switch {
		case err == nil:
			return
		case errors.Is(err, store.ErrFenced):
			c.fenced.Add(1)
			log.WarnContext(ctx, "partition fenced by another owner; reloading")
			continue
		default:
			log.ErrorContext(ctx, "consuming partition; reloading", slog.Any("error", err))
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// consume loads the partition and processes batches until ctx is done (nil)
// or something forces a reload (error).
func (c *Consumer) consume(ctx context.Context, kc *kafkaCommits, pid store.PartitionID, log *slog.Logger) error {
	count, err := c.partitionCount(ctx, pid.Topic)
	if err != nil {
		return err
	}
	state, from, err := c.cfg.Checkpointer.LoadPartition(ctx, pid)
	if err != nil {
		return fmt.Errorf("loading partition: %w", err)
	}
	part, err := pipeline.New(pipeline.Config{
		Directory:  c.cfg.Directory,
		Rules:      c.cfg.Rules,
		Scorers:    c.cfg.Scorers,
		SessionGap: c.cfg.SessionGap,
		Clock:      c.cfg.Clock,
		Here:       c.router.here(pid.Partition, count),
	})
	if err != nil {
		return err
	}
	part.Load(state)

	start, err := c.startOffset(ctx, pid, from, log)
	if err != nil {
		return err
	}
	r := startFetcher(ctx, fetcherConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     pid.Topic,
		Partition: pid.Partition,
		MaxBytes:  FetchMaxBytes,
		// A fetch returns as soon as data exists, so MaxWait adds no latency.
		MaxWait: time.Second,
		Logger:  log,
	}, start)
	defer r.close()
	log.InfoContext(ctx, "partition loaded", slog.Int64("offset", from), slog.Int("pairs", len(state.Pairs)))

	var erasedVersion uint64
	forget := func() bool {
		if c.cfg.Erasures == nil {
			return false
		}
		erased, v := c.cfg.Erasures.Erased()
		if v == erasedVersion {
			return false
		}
		erasedVersion = v
		if n := part.Forget(erased); n > 0 {
			log.InfoContext(ctx, "dropped state of erased fans", slog.Int("entries", n))
			return true
		}
		return false
	}
	forget()
	// A new owner answers the newest request at once: it may have come while
	// the partition had no owner. Recomputing is one pass over its pairs.
	var recomputedFor int64
	checkpoints := 0
	// One checkpoint may be in flight while the next batch is read and applied:
	// Postgres and the event path overlap instead of taking turns. The next
	// checkpoint starts only after the previous one is durable, so offsets
	// still advance in order and a failed one leaves nothing after it.
	var inflight chan error
	durable, pending := from, from // offsets made durable, and in flight
	await := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight
		inflight = nil
		if err == nil {
			durable = pending
		}
		return err
	}
	defer func() { _ = await() }()
	// release ends the partition's tenure on shutdown or a rebalance: the
	// in-flight checkpoint lands, and the log says where the next owner starts
	// and whether everything read was made durable (read_to = checkpointed_to).
	release := func() error {
		err := await()
		log.InfoContext(ctx, "partition released", slog.Int64("read_to", from), slog.Int64("checkpointed_to", durable), slog.Bool("checkpointed", err == nil))
		return err
	}
	for {
		n, next, out := c.readBatch(ctx, r, part, pid)
		c.observeRead(&out)
		mustSnapshot := forget()
		var recomputed *store.RecomputeAck
		if c.cfg.Recomputes != nil {
			if req := c.cfg.Recomputes.RecomputeRequested(); req > recomputedFor {
				n := part.Recompute(c.cfg.Clock())
				recomputedFor, mustSnapshot = req, true
				recomputed = &store.RecomputeAck{Request: req, Pairs: n}
				log.InfoContext(ctx, "recomputed decay", slog.Int64("request", req), slog.Int("pairs", n))
			}
		}
		if n == 0 {
			if ctx.Err() != nil {
				return release() // done with nothing more read
			}
			if !mustSnapshot {
				// Idle: let the last checkpoint land so a failure surfaces now.
				if err := await(); err != nil {
					return err
				}
				continue
			}
			next = from // an erasure on an idle partition: snapshot without reading
		}
		snapshot := mustSnapshot || checkpoints%c.cfg.SnapshotEvery == 0
		cp := store.Checkpoint{PartitionID: pid, From: from, To: next, Delta: part.Flush(), Recomputed: recomputed}
		if snapshot {
			full := part.State()
			cp.Snapshot = &full
		}
		if err := await(); err != nil {
			return err
		}
		done := make(chan error, 1)
		inflight, pending = done, cp.To
		// The work for these records is done in memory; make it durable even if
		// the partition is taken away meanwhile, so the next owner does not redo
		// it. A stale owner cannot do harm: the offset check fences it.
		go func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.CheckpointTimeout)
			defer cancel()
			err := c.checkpoint(cctx, cp, out, log)
			if err == nil {
				kc.note(pid.Partition, cp.To)
			}
			done <- err
		}()
		checkpoints++
		from = next
		if ctx.Err() != nil {
			return release()
		}
	}
}

// partitionCount reads how many partitions topic has: where a fan's state
// lives depends on it. A change of the count rebalances the group, and every
// partition is loaded again.
func (c *Consumer) partitionCount(ctx context.Context, topic string) (int, error) {
	conn, err := kafka.DialContext(ctx, "tcp", c.cfg.Brokers[0])
	if err != nil {
		return 0, fmt.Errorf("reading partitions of %s: %w", topic, err)
	}
	defer func() { _ = conn.Close() }()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return 0, fmt.Errorf("reading partitions of %s: %w", topic, err)
	}
	if len(parts) == 0 {
		return 0, fmt.Errorf("reading partitions of %s: none", topic)
	}
	return len(parts), nil
}

// startOffset decides where to read from. A stored offset outside the log
// means the log changed under us, and kafka-go would otherwise wait silently
// for an offset beyond the end: past the end, the topic was recreated, so every
// record in it is new; before the start, retention deleted records nobody read.
func (c *Consumer) startOffset(ctx context.Context, pid store.PartitionID, from int64, log *slog.Logger) (int64, error) {
	if from == store.OffsetStart {
		return kafka.FirstOffset, nil
	}
	conn, err := kafka.DialLeader(ctx, "tcp", c.cfg.Brokers[0], pid.Topic, pid.Partition)
	if err != nil {
		return 0, fmt.Errorf("reading log bounds: %w", err)
	}
	defer func() { _ = conn.Close() }()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return 0, fmt.Errorf("reading log bounds: %w", err)
	}
	switch {
	case from > last:
		log.ErrorContext(ctx, "stored offset is past the end of the log; the topic was recreated, reading it from the start",
			slog.Int64("stored", from), slog.Int64("log_end", last))
		return first, nil
	case from < first:
		log.ErrorContext(ctx, "records were deleted before they were read; resuming at the log start",
			slog.Int64("stored", from), slog.Int64("log_start", first), slog.Int64("lost", first-from))
		return first, nil
	}
	return from, nil
}

// outbox is what a batch must write to Kafka before its checkpoint: dead
// letters, and events routed to their fan's home partition.
type outbox struct {
	dead, routes []kafka.Message
	// byType counts the batch's records by event type (events.Type.Index),
	// the last entry those that did not decode.
	byType [events.NumTypes + 1]int32
	// read, applied and dropped count the batch's records for Stats: added
	// to the shared counters once a batch, since an atomic add per record
	// on a cache line every partition writes cost each record a transfer
	// of that line between cores.
	read, applied, dropped int64
	droppedBy              map[string]int64 // dropped by reason, nil for none
}

// observeRead adds the batch's counts to Stats and reports its counts by
// type to ObserveRead.
func (c *Consumer) observeRead(out *outbox) {
	c.read.Add(out.read)
	c.applied.Add(out.applied)
	c.dropped.Add(out.dropped)
	// After the counters: whoever sees these reasons sees them too.
	if len(out.droppedBy) > 0 {
		c.mu.Lock()
		for r, n := range out.droppedBy {
			c.droppedBy[r] += n
		}
		c.mu.Unlock()
	}
	if c.cfg.ObserveRead == nil {
		return
	}
	types := events.Types()
	for i, n := range out.byType {
		if n == 0 {
			continue
		}
		var t events.Type
		if i < len(types) {
			t = types[i]
		}
		c.cfg.ObserveRead(t, int(n))
	}
}

// FetchMaxBytes caps one fetch from a partition. With kafka-go's Reader, a
// fetch of 16 MiB cost the process more CPU than 1 MiB ones: the broker's
// reply sat in a socket the Reader drained only as fast as events were
// applied, so it went out in many small writes (1M-event bench, 6
// interleaved runs each: 7.3 against 6.1 CPU seconds in the process). The
// fetcher reads a whole reply at once; 1 MiB still carries thousands of
// events a fetch and bounds the two fetches a partition holds.
const FetchMaxBytes = 1 << 20

// readBatch applies records as they arrive, so the index reflects an event as
// soon as it is read, until the batch is full or BatchLinger has passed since
// its first record. It returns how many records it read, the next offset, and
// the records to write before checkpointing.
func (c *Consumer) readBatch(ctx context.Context, r *fetcher, part *pipeline.Partition, pid store.PartitionID) (int, int64, outbox) {
	var out outbox
	// An idle partition wakes up now and then to act on erasures.
	ictx, icancel := context.WithTimeout(ctx, time.Second)
	m, err := r.next(ictx)
	icancel()
	if err != nil {
		return 0, 0, out
	}
	if c.firstRead.Load() == 0 {
		c.firstRead.CompareAndSwap(0, time.Now().UnixNano())
	}
	c.apply(ctx, part, pid, m, &out)
	n, next := 1, m.Offset+1
	lctx, cancel := context.WithTimeout(ctx, c.cfg.BatchLinger)
	defer cancel()
	for n < c.cfg.BatchSize {
		// Records already fetched do not wait on lctx: look at it now and
		// then, so that a busy partition still checkpoints every linger.
		if n%lingerCheckEvery == 0 && lctx.Err() != nil {
			break
		}
		m, err := r.next(lctx)
		if err != nil {
			break
		}
		c.apply(ctx, part, pid, m, &out)
		n, next = n+1, m.Offset+1
	}
	return n, next, out
}

// lingerCheckEvery is how many records a batch applies between looks at
// its linger deadline.
const lingerCheckEvery = 64

// apply runs one record through the pipeline, adding to out what it must write.
func (c *Consumer) apply(ctx context.Context, part *pipeline.Partition, pid store.PartitionID, m kafka.Message, out *outbox) {
	var readAt time.Time
	out.read++
	sampled := out.read%8 == 0 && c.cfg.ObserveApply != nil
	if sampled {
		readAt = time.Now()
	}
	src, srcOffset, routed, err := c.router.origin(m)
	if err == nil && routed && !part.FirstRouting(src, srcOffset) {
		c.routedRepeat.Add(1)
		return
	}
	var ev events.Event
	if err == nil {
		// Records carry a header or two; a fixed array keeps the copy off the heap.
		var buf [4]events.Header
		headers := buf[:0]
		for _, h := range m.Headers {
			headers = append(headers, events.Header{Key: h.Key, Value: h.Value})
		}
		ev, err = c.cfg.Decoder.Decode(m.Value, headers)
	}
	if i := ev.Type.Index(); err == nil && i >= 0 {
		out.byType[i]++
	} else {
		out.byType[events.NumTypes]++
	}
	if err == nil {
		var res pipeline.Result
		if routed {
			if res, err = part.ApplyRouted(ev); err == nil {
				c.routedIn.Add(1)
			}
		} else {
			res, err = part.Apply(ev)
		}
		if err == nil {
			switch {
			case res.Route:
				out.routes = append(out.routes, c.router.copyFor(m, res.RouteKey))
				c.routed.Add(1)
			case res.Dropped:
				out.dropped++
				if out.droppedBy == nil {
					out.droppedBy = map[string]int64{}
				}
				out.droppedBy[res.DropReason]++
			default:
				out.applied++
			}
			if sampled {
				c.cfg.ObserveApply(time.Since(readAt))
			}
			return
		}
	}
	var rej *events.Rejection
	if !errors.As(err, &rej) {
		rej = &events.Rejection{Reason: "internal", Detail: err.Error()}
	}
	c.mu.Lock()
	c.byReason[rej.Reason]++
	c.mu.Unlock()
	c.logger.DebugContext(ctx, "dead-lettering event", slog.Int("partition", pid.Partition),
		slog.Int64("offset", m.Offset), slog.String("reason", string(rej.Reason)))
	out.dead = append(out.dead, deadLetter(m, rej))
}

// deadLetter copies a record for the DLQ with the reason and its origin in headers.
func deadLetter(m kafka.Message, rej *events.Rejection) kafka.Message {
	h := slices.Clone(m.Headers)
	h = append(h,
		kafka.Header{Key: "dlq_reason", Value: []byte(rej.Reason)},
		kafka.Header{Key: "dlq_detail", Value: []byte(rej.Detail)},
		kafka.Header{Key: "dlq_topic", Value: []byte(m.Topic)},
		kafka.Header{Key: "dlq_partition", Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: "dlq_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: h, Time: m.Time}
}

// checkpoint writes dead letters and routed events, then the batch's effects
// with its offset. Transient failures are retried with the same checkpoint:
// it cannot be rebuilt.
func (c *Consumer) checkpoint(ctx context.Context, cp store.Checkpoint, out outbox, log *slog.Logger) error {
	backoff := c.cfg.RetryBackoff
	retry := func(what string, err error) error {
		log.WarnContext(ctx, what, slog.Any("error", err), slog.Duration("retry_in", backoff))
		if !sleep(ctx, backoff) {
			return fmt.Errorf("%s: %w", what, err)
		}
		backoff = min(2*backoff, 5*time.Second)
		return nil
	}
	// Dead letters and routed events go first: a crash before the checkpoint
	// repeats them (a dead letter at least once; a routed event is applied
	// once at its home) rather than losing them.
	dead, routes := out.dead, out.routes
	for len(dead) > 0 {
		err := c.dlq.WriteMessages(ctx, dead...)
		if err == nil {
			c.dead.Add(int64(len(dead)))
			break
		}
		if rerr := retry("writing dead letters", err); rerr != nil {
			return rerr
		}
	}
	for len(routes) > 0 {
		n, err := c.router.write(ctx, routes)
		routes = routes[n:]
		if err == nil {
			break
		}
		if rerr := retry("routing events to their fans' partitions", err); rerr != nil {
			return rerr
		}
	}
	for {
		began := time.Now()
		inserted, err := c.cfg.Checkpointer.Commit(ctx, cp)
		if err == nil {
			c.checkpointNanos.Add(int64(time.Since(began)))
			c.checkpoints.Add(1)
			c.contributions.Add(int64(len(cp.Delta.Contributions)))
			c.offersIssued.Add(int64(len(inserted)))
			return nil
		}
		if errors.Is(err, store.ErrFenced) {
			return err
		}
		if rerr := retry("committing checkpoint", err); rerr != nil {
			return rerr
		}
	}
}

func unixNanoTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// sleep waits d with jitter, or until ctx is done; it reports whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Package bench measures the consumer path against a bare kafka-go reader on
// the same records: `crescendo bench` pre-loads N events into an in-process
// broker, drains them through read → decode → consent → index → sessions →
// threshold check → durable checkpoint, then drains them again with readers
// that do nothing, and reports both rates, their ratio, read-to-index latency
// and the memory each tracked (fan, performer) pair costs.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/broker"
	"github.com/crescendo-hq/crescendo/consumers"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// Config configures a run.
type Config struct {
	Events     int    // default 1,000,000
	Fans       int    // default 100,000
	Performers int    // default 1,000
	Partitions int    // default 8
	Seed       uint64 // generator seed; default 1
	// AdminURL names the Postgres server; the run creates its own database there and drops it.
	AdminURL string
	Out      io.Writer
	Logger   *slog.Logger
	// CPUProfile, when set, receives a CPU profile of the consumer-path drain only.
	CPUProfile io.Writer
}

// Result is what a run measured.
type Result struct {
	Events, Pairs                 int
	ConsumerRate, BareRate, Ratio float64 // events/s
	ConsumerTime, BareTime        time.Duration
	// BatchRate is a second baseline: the same records drained by the
	// Conn.ReadBatch loop the consumer itself reads with, which does less
	// per record than a Reader; BatchRatio is the consumer's rate over it.
	BatchRate, BatchRatio float64
	BatchTime             time.Duration
	P50, P99              time.Duration // read-to-index
	BytesPerPair          float64
	OffersIssued          int64
	Checkpoints           int64
	CheckpointTime        time.Duration // summed over partitions
	Contributions         int64         // explanation rows written
	// ProcessCPU is the CPU this process spent in the consumer-path drain
	// (the in-process broker included); PostgresCPU is what a Postgres server
	// on this machine spent meanwhile, and OtherCPU what the rest of the
	// machine did. BareCPU is what the whole machine spent in the counted
	// bare drain. Zero when unmeasured.
	ProcessCPU, PostgresCPU, OtherCPU, BareCPU time.Duration
	// WALBytes is the write-ahead log Postgres wrote during the drain: what
	// the durable checkpoints cost in writes. Zero when unmeasured.
	WALBytes int64
}

const topic = "bench-activity"

// Run performs one benchmark run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.Events = cmp.Or(cfg.Events, 1_000_000)
	cfg.Fans = cmp.Or(cfg.Fans, 100_000)
	cfg.Performers = cmp.Or(cfg.Performers, 1_000)
	cfg.Partitions = cmp.Or(cfg.Partitions, 8)
	cfg.Seed = cmp.Or(cfg.Seed, 1)
	cfg.AdminURL = cmp.Or(cfg.AdminURL, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	logger := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	out := cmp.Or[io.Writer](cfg.Out, io.Discard)
	var res Result
	res.Events = cfg.Events

	dbURL, drop, err := pgtemp.Create(ctx, cfg.AdminURL, "crescendo_bench_")
	if err != nil {
		return res, err
	}
	defer func() { _ = drop() }()
	st, err := store.Open(ctx, store.Config{URL: dbURL, Logger: logger})
	if err != nil {
		return res, err
	}
	defer st.Close()

	b, err := broker.Start(ctx, broker.Config{Addr: "127.0.0.1:0", Logger: logger,
		Topics: []broker.TopicSpec{{Name: topic, Partitions: int32(cfg.Partitions)}, {Name: topic + ".dlq", Partitions: 1}}})
	if err != nil {
		return res, err
	}
	defer b.Close()

	fmt.Fprintf(out, "seeding %d fans, %d performers\n", cfg.Fans, cfg.Performers)
	rng := mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	if err := seed(ctx, st, cfg, rng); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "producing %d events to %d partitions\n", cfg.Events, cfg.Partitions)
	if err := produce(ctx, b.Addrs(), cfg, rng); err != nil {
		return res, err
	}
	ends, err := logEnds(ctx, b.Addrs()[0], cfg.Partitions)
	if err != nil {
		return res, err
	}

	// The full consumer path.
	dir, err := st.NewDirectory(ctx)
	if err != nil {
		return res, err
	}
	rules, err := st.NewRuleSet(ctx)
	if err != nil {
		return res, err
	}
	scorers, err := st.NewScorers(ctx)
	if err != nil {
		return res, err
	}
	disp, err := notifiers.New(notifiers.Config{Pool: st.Pool()}) // insert-only: delivery is not measured
	if err != nil {
		return res, err
	}
	decoder, err := events.NewDecoder(events.DecoderConfig{})
	if err != nil {
		return res, err
	}
	lat := make([]time.Duration, cfg.Events)
	var nlat atomic.Int64
	secret, err := st.ClusterSecret(ctx, "routing")
	if err != nil {
		return res, err
	}
	c, err := consumers.New(consumers.Config{
		Brokers: b.Addrs(), Topic: topic, GroupID: "bench", RoutingSecret: secret, Decoder: decoder, Directory: dir, Rules: rules, Scorers: scorers,
		Checkpointer:      store.Checkpointer{Store: st, Enqueue: disp.EnqueueTx},
		HeartbeatInterval: 500 * time.Millisecond,
		ObserveApply: func(d time.Duration) {
			i := nlat.Add(1) - 1
			if int(i) < len(lat) {
				lat[i] = d
			}
		},
		Logger: logger,
	})
	if err != nil {
		return res, err
	}
	fmt.Fprintln(out, "draining through the consumer path")
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			stop()
			return res, fmt.Errorf("starting CPU profile: %w", err)
		}
	}
	wal0, err := st.WALPosition(ctx)
	if err != nil {
		stop()
		return res, err
	}
	cpu0 := sampleCPU()
	go func() { done <- c.Run(cctx) }()
	err = waitCheckpointed(ctx, st, cfg.Partitions, ends)
	end := time.Now()
	if wal1, werr := st.WALPosition(ctx); err == nil && werr == nil {
		// The server's whole log: on a machine running nothing else, the drain's.
		res.WALBytes = wal1 - wal0
	}
	if cpu1 := sampleCPU(); cpu0.ok && cpu1.ok {
		res.ProcessCPU = cpu1.process - cpu0.process
		res.PostgresCPU = max(0, cpu1.postgres-cpu0.postgres)
		res.OtherCPU = max(0, cpu1.machine-cpu0.machine-res.ProcessCPU-res.PostgresCPU)
	}
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		stop()
		<-done
		return res, err
	}
	stop()
	if err := <-done; err != nil {
		return res, err
	}
	res.ConsumerTime = end.Sub(c.Stats().FirstRead)
	res.ConsumerRate = float64(cfg.Events) / res.ConsumerTime.Seconds()
	stats := c.Stats()
	res.OffersIssued, res.Checkpoints, res.CheckpointTime = stats.OffersIssued, stats.Checkpoints, stats.CheckpointTime
	res.Contributions = stats.Contributions
	n := min(int(nlat.Load()), len(lat))
	sample := lat[:n]
	slices.Sort(sample)
	if n > 0 {
		res.P50, res.P99 = sample[n/2], sample[n*99/100]
	}

	// The bare reader: the same records, read and dropped. A drain of a
	// second or two swings with whatever else the machine runs, so it is
	// drained three times and the fastest counts: the ratio errs against
	// the consumer, never for it.
	fmt.Fprintln(out, "draining with bare kafka-go readers, then bare batch fetches (best of 3 each)")
	for range 3 {
		cpu0 := sampleCPU()
		d, err := bareDrain(ctx, b.Addrs(), cfg.Partitions, ends)
		if err != nil {
			return res, err
		}
		cpu1 := sampleCPU()
		if res.BareTime == 0 || d < res.BareTime {
			res.BareTime, res.BareCPU = d, 0
			if cpu0.ok && cpu1.ok {
				res.BareCPU = cpu1.machine - cpu0.machine
			}
		}
	}
	res.BareRate = float64(cfg.Events) / res.BareTime.Seconds()
	res.Ratio = res.ConsumerRate / res.BareRate
	for range 3 {
		d, err := batchDrain(ctx, b.Addrs()[0], cfg.Partitions, ends)
		if err != nil {
			return res, err
		}
		if res.BatchTime == 0 || d < res.BatchTime {
			res.BatchTime = d
		}
	}
	res.BatchRate = float64(cfg.Events) / res.BatchTime.Seconds()
	res.BatchRatio = res.ConsumerRate / res.BatchRate

	res.Pairs, res.BytesPerPair, err = memoryPerPair(ctx, st, dir, rules, scorers, cfg.Partitions)
	if err != nil {
		return res, err
	}
	return res, nil
}

// Print writes a report of r with the conditions it was measured under.
func (r Result) Print(w io.Writer, cfg Config) {
	fmt.Fprintf(w, "\nconditions: %d events, %d fans, %d performers, %d partitions, GOMAXPROCS=%d, %s/%s, in-process broker, local Postgres, serve's default batching (5000 events, 20ms linger)\n",
		r.Events, cmp.Or(cfg.Fans, 100_000), cmp.Or(cfg.Performers, 1_000), cmp.Or(cfg.Partitions, 8), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "consumer path:   %9.0f events/s  (%s; %d checkpoints taking %s summed over partitions; %d contributions; %d offers issued)\n",
		r.ConsumerRate, r.ConsumerTime.Round(time.Millisecond), r.Checkpoints, r.CheckpointTime.Round(time.Millisecond), r.Contributions, r.OffersIssued)
	fmt.Fprintf(w, "bare reader:     %9.0f events/s  (%s, the fastest of 3 drains)\n", r.BareRate, r.BareTime.Round(time.Millisecond))
	fmt.Fprintf(w, "ratio:           %9.1f%%\n", 100*r.Ratio)
	if r.BatchRate > 0 {
		fmt.Fprintf(w, "bare batch fetch: %8.0f events/s  (Conn.ReadBatch, the consumer's own read loop, fastest of 3); consumer at %.1f%% of it\n",
			r.BatchRate, 100*r.BatchRatio)
	}
	fmt.Fprintf(w, "read-to-index:   p50 %s, p99 %s\n", r.P50, r.P99)
	if r.ProcessCPU > 0 {
		per := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(r.Events) }
		fmt.Fprintf(w, "cpu in the drain: %.2fs in this process (broker included), %.2fs in Postgres, %.2fs elsewhere: %.1f + %.1f + %.1f µs per event\n",
			r.ProcessCPU.Seconds(), r.PostgresCPU.Seconds(), r.OtherCPU.Seconds(), per(r.ProcessCPU), per(r.PostgresCPU), per(r.OtherCPU))
		fmt.Fprintf(w, "cpu, bare drain:  %.2fs on the whole machine: %.1f µs per event\n", r.BareCPU.Seconds(), per(r.BareCPU))
	}
	if r.WALBytes > 0 {
		fmt.Fprintf(w, "postgres WAL:    %.1f MB written in the drain, %.0f bytes per event\n", float64(r.WALBytes)/1e6, float64(r.WALBytes)/float64(r.Events))
	}
	fmt.Fprintf(w, "memory:          %.0f bytes per tracked (fan, performer) pair (%d pairs)\n", r.BytesPerPair, r.Pairs)
}

const partnerID = "bench-partner"

func performerID(i int) string { return fmt.Sprintf("perf-%04d", i) }
func userID(i int) string      { return fmt.Sprintf("user-%06d", i) }

func seed(ctx context.Context, st *store.Store, cfg Config, rng *mrand.Rand) error {
	if err := st.PutPartner(ctx, store.Partner{ID: partnerID, Name: "Bench", APIKey: "bench"}); err != nil {
		return err
	}
	for i := range cfg.Performers {
		if err := st.PutPerformer(ctx, performerID(i), fmt.Sprintf("Performer %d", i)); err != nil {
			return err
		}
	}

	// Streaming counts a point per 5 minutes so that the load crosses thresholds.
	prof := scoring.DefaultProfile()
	prof.ID, prof.StreamMode, prof.StreamThresholdMinutes, prof.StreamCap = "bench", scoring.StreamCount, 5, 255
	if err := st.PutProfile(ctx, prof); err != nil {
		return err
	}
	for i := range cfg.Performers {
		if err := st.SetPerformerScoring(ctx, performerID(i), store.PerformerScoring{ProfileID: "bench"}); err != nil {
			return err
		}
	}
	// Rules for the most popular tenth of performers, as marketers would.
	for i := range max(cfg.Performers/10, 1) {
		show := store.Show{ID: fmt.Sprintf("show-%04d", i), PerformerID: performerID(i), Name: "Show", StartsAt: time.Now().Add(90 * 24 * time.Hour),
			VenueName: "Venue", VenueLat: 51.5, VenueLon: -0.1}
		if err := st.PutShow(ctx, show); err != nil {
			return err
		}
		if _, err := st.PutRule(ctx, offers.Rule{ID: fmt.Sprintf("rule-%04d", i), PerformerID: performerID(i), ShowID: show.ID,
			Tiers:    []offers.Tier{{Threshold: 2, Perks: []string{"presale"}}, {Threshold: 4, Perks: []string{"vip_upgrade"}}},
			Channels: []offers.Channel{offers.ChannelEmail}, Lifetime: 48 * time.Hour}); err != nil {
			return err
		}
	}
	fans := make([]store.BulkFan, cfg.Fans)
	for i := range fans {
		fans[i] = store.BulkFan{Fan: store.Fan{ID: uuid.New(), DisplayName: "Fan", TimeZone: "UTC"}, PartnerUserID: userID(i)}
		// A small share of the partner's users never linked an account.
		if rng.IntN(100) == 0 {
			fans[i].PartnerUserID = "unlinked-" + userID(i)
		}
	}
	return st.BulkLoadFans(ctx, partnerID, fans)
}

// produce writes the events: mostly listens, the other types in the shares a
// streaming partner and social partners would send, performers by a Zipf law.
func produce(ctx context.Context, brokers []string, cfg Config, rng *mrand.Rand) error {
	zipf := mrand.NewZipf(rng, 1.1, 8, uint64(cfg.Performers-1))
	now := time.Now().UTC()
	msgs := make([]kafka.Message, 0, cfg.Events)
	for i := range cfg.Events {
		user := userID(rng.IntN(cfg.Fans))
		perf := performerID(int(zipf.Uint64()))
		ev := events.Event{ID: fmt.Sprintf("e%d", i), Source: partnerID, Subject: user, Time: now.Add(-time.Duration(rng.IntN(48*3600)) * time.Second)}
		switch r := rng.IntN(100); {
		case r < 80:
			ev.Type, ev.Listen = events.TypeListen, &events.Listen{Performer: perf, Track: "track", MsPlayed: int64(30_000 + rng.IntN(270_000)), Device: "mobile", Country: "GB"}
		case r < 88:
			ev.Type, ev.PageView = events.TypePageView, &events.PageView{Performer: perf, URL: "https://example.com/" + perf}
		case r < 93:
			ev.Type, ev.Follow = events.TypeFollow, &events.Follow{Performer: perf}
		case r < 96:
			ev.Type, ev.SocialPost = events.TypeSocialPost, &events.SocialPost{Text: "I love Performer " + perf, Channel: "twitter"}
		case r < 98:
			ev.Type, ev.PhotoTag = events.TypePhotoTag, &events.PhotoTag{Performer: perf}
		default:
			ev.Type, ev.MerchPurchase = events.TypeMerchPurchase, &events.MerchPurchase{Performer: perf, Item: "shirt", Amount: 2500, Currency: "GBP"}
		}
		v, err := events.Encode(ev)
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(user), Value: v})
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: kafka.Murmur2Balancer{Consistent: true}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond, BatchSize: 5_000, Transport: tr}
	defer func() { _ = w.Close() }()
	for len(msgs) > 0 {
		n := min(len(msgs), 50_000)
		if err := w.WriteMessages(ctx, msgs[:n]...); err != nil {
			var we kafka.WriteErrors
			if errors.As(err, &we) {
				for _, e := range we {
					if e != nil {
						return fmt.Errorf("producing: %d of %d messages failed, first: %w", we.Count(), len(we), e)
					}
				}
			}
			return fmt.Errorf("producing: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}

func logEnds(ctx context.Context, addr string, partitions int) (map[int]int64, error) {
	ends := make(map[int]int64, partitions)
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			return nil, fmt.Errorf("dialing partition %d: %w", p, err)
		}
		last, err := conn.ReadLastOffset()
		_ = conn.Close()
		if err != nil {
			return nil, fmt.Errorf("reading end of partition %d: %w", p, err)
		}
		ends[p] = last
	}
	return ends, nil
}

// waitCheckpointed returns once every partition's durable offset reached its end.
func waitCheckpointed(ctx context.Context, st *store.Store, partitions int, ends map[int]int64) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Minute)
	for {
		all := true
		for p := range partitions {
			var next int64
			err := st.Pool().QueryRow(ctx, `SELECT next_offset FROM consumer_offsets WHERE group_id = 'bench' AND topic = $1 AND partition = $2`, topic, p).Scan(&next)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("reading offsets: %w", err)
			}
			if next < ends[p] {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("consumer did not drain the topic within 30 minutes")
		case <-tick.C:
		}
	}
}

// drainAll runs drain on every partition at once and times them together.
func drainAll(partitions int, drain func(p int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, partitions)
	start := time.Now()
	for p := range partitions {
		wg.Go(func() { errs[p] = drain(p) })
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// batchDrain reads every partition to its end with Conn.ReadBatch, a fetch
// at a time, as the consumer's fetcher does, dropping the records.
func batchDrain(ctx context.Context, addr string, partitions int, ends map[int]int64) (time.Duration, error) {
	return drainAll(partitions, func(p int) error {
		conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			return fmt.Errorf("batch read of partition %d: %w", p, err)
		}
		defer func() { _ = conn.Close() }()
		for off := int64(0); off < ends[p]; {
			if _, err := conn.Seek(off, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
				return fmt.Errorf("batch read of partition %d: %w", p, err)
			}
			batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: consumers.FetchMaxBytes, MaxWait: time.Second})
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				off = m.Offset + 1
			}
			if err := batch.Close(); err != nil {
				return fmt.Errorf("batch read of partition %d at %d: %w", p, off, err)
			}
		}
		return nil
	})
}

// bareDrain reads every partition to its end with a kafka-go Reader each.
func bareDrain(ctx context.Context, brokers []string, partitions int, ends map[int]int64) (time.Duration, error) {
	return drainAll(partitions, func(p int) error {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: consumers.FetchMaxBytes, MaxWait: 250 * time.Millisecond, QueueCapacity: 4096})
		defer func() { _ = r.Close() }()
		for n := int64(0); n < ends[p]; n++ {
			if _, err := r.FetchMessage(ctx); err != nil {
				return fmt.Errorf("bare read of partition %d: %w", p, err)
			}
		}
		return nil
	})
}

// memoryPerPair loads every partition's durable state into the in-memory
// structures the consumer keeps and measures the heap they take.
func memoryPerPair(ctx context.Context, st *store.Store, dir pipeline.Directory, rules pipeline.RuleSet, scorers pipeline.Scorers, partitions int) (int, float64, error) {
	states := make([]pipeline.State, partitions)
	for p := range partitions {
		s, _, err := st.LoadPartition(ctx, store.PartitionID{Group: "bench", Topic: topic, Partition: p})
		if err != nil {
			return 0, 0, err
		}
		states[p] = s
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	parts := make([]*pipeline.Partition, partitions)
	pairs := 0
	for p := range partitions {
		part, err := pipeline.New(pipeline.Config{Directory: dir, Rules: rules, Scorers: scorers})
		if err != nil {
			return 0, 0, err
		}
		part.Load(states[p])
		parts[p] = part
		pairs += len(states[p].Pairs)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(parts)
	runtime.KeepAlive(states)
	if pairs == 0 {
		return 0, 0, errors.New("no pairs tracked")
	}
	return pairs, float64(after.HeapAlloc-before.HeapAlloc) / float64(pairs), nil
}

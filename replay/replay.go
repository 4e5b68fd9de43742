package replay

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
)

// Rules finds the rule to replay, compiled against its show.
type Rules interface {
	CompiledRule(ctx context.Context, id string) (*offers.Program, error)
}

// Reach tells, per fan, the first of the channels the fan can be reached on.
type Reach interface {
	FirstReachable(ctx context.Context, fans []uuid.UUID, channels []offers.Channel) (map[uuid.UUID]offers.Channel, error)
}

// Config configures a Runner.
type Config struct {
	Brokers   []string
	Topic     string // default "fan-activity"
	Decoder   *events.Decoder
	Directory pipeline.Directory
	Scorers   pipeline.Scorers
	Rules     Rules
	Reach     Reach
	// SessionGap must be the consumers' for sessions to replay as they ran.
	SessionGap time.Duration
	// SampleSize bounds the sampled offers and misses; default 20.
	SampleSize int
	Clock      func() time.Time
	Logger     *slog.Logger
}

// Runner replays rules over the activity topic.
type Runner struct {
	cfg Config
}

// New validates cfg.
func New(cfg Config) (*Runner, error) {
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("Brokers: required"))
	}
	if cfg.Decoder == nil || cfg.Directory == nil || cfg.Scorers == nil || cfg.Rules == nil || cfg.Reach == nil {
		errs = append(errs, errors.New("Decoder, Directory, Scorers, Rules and Reach: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	cfg.Topic = cmp.Or(cfg.Topic, "fan-activity")
	cfg.SampleSize = cmp.Or(cfg.SampleSize, 20)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	return &Runner{cfg: cfg}, nil
}

type oneRule []*offers.Program

func (r oneRule) ForPerformer(id string) []*offers.Program {
	if len(r) > 0 && r[0].Rule.PerformerID == id {
		return r
	}
	return nil
}

// DryRun replays the rule over the last since of activity and reports what it
// would have issued and why fans missed out, without writing or sending
// anything. Every partition is merged in time order into one pipeline, so a
// fan's accounts at several partners count together as they do live; routed
// copies are skipped for the same reason.
func (r *Runner) DryRun(ctx context.Context, ruleID string, since time.Duration) (Report, error) {
	prog, err := r.cfg.Rules.CompiledRule(ctx, ruleID)
	if err != nil {
		return Report{}, err
	}
	until := r.cfg.Clock()
	rep := Report{RuleID: ruleID, Version: prog.Rule.Version, From: until.Add(-since), Until: until,
		ByTier: map[int]int{}, ByChannel: map[string]int{}, NoOffer: map[int]map[string]int{},
		Notes: []string{
			"the replay starts from empty state at the window's start: points earned before it do not count",
			"consent is today's: events of accounts unlinked since are left out",
			"budget and per-fan limits apply as if no offers existed before the window",
		}}
	var now time.Time // the event being replayed: it stamps offers
	part, err := pipeline.New(pipeline.Config{Directory: r.cfg.Directory, Rules: oneRule{prog}, Scorers: r.cfg.Scorers,
		SessionGap: r.cfg.SessionGap, Clock: func() time.Time { return now }})
	if err != nil {
		return rep, err
	}
	src, err := r.open(ctx, rep.From)
	if err != nil {
		return rep, err
	}
	defer src.close()

	var offered []offers.Offer
	missed := map[offers.Key]offers.Decision{}
	got := map[offers.Key]bool{}
	flush := func() {
		for _, d := range part.Flush().Decisions {
			missed[d.Key] = d
		}
	}
	for {
		m, ok, err := src.next(ctx)
		if err != nil {
			return rep, err
		}
		if !ok {
			break
		}
		rep.Events++
		if routedCopy(m) {
			continue
		}
		ev, err := r.cfg.Decoder.Decode(m.Value, headers(m))
		if err != nil {
			continue // dead-lettered live, too
		}
		now = ev.Time
		res, err := part.Apply(ev)
		if err != nil {
			continue
		}
		for _, o := range res.Offers {
			offered = append(offered, o)
			got[o.Key()] = true
		}
		if rep.Events%4096 == 0 {
			flush()
		}
	}
	flush()

	// The budget is spent in time order, as checkpoints would have spent it.
	slices.SortStableFunc(offered, func(a, b offers.Offer) int { return a.IssuedAt.Compare(b.IssuedAt) })
	if b := prog.Rule.Budget; b > 0 && len(offered) > b {
		for _, o := range offered[b:] {
			missed[o.Key()] = offers.Decision{Key: o.Key(), Reason: offers.ReasonBudget, Index: o.IndexValue}
			got[o.Key()] = false
		}
		offered = offered[:b]
	}
	fans := make([]uuid.UUID, 0, len(offered))
	for _, o := range offered {
		fans = append(fans, o.FanID)
	}
	reach, err := r.cfg.Reach.FirstReachable(ctx, fans, prog.Rule.Channels)
	if err != nil {
		return rep, err
	}
	for _, o := range offered {
		rep.Offers++
		rep.ByTier[o.Tier]++
		ch := string(reach[o.FanID])
		rep.ByChannel[cmp.Or(ch, "unreachable")]++
		if len(rep.Sample) < r.cfg.SampleSize {
			rep.Sample = append(rep.Sample, SampleOffer{FanID: o.FanID, Tier: o.Tier, Index: o.IndexValue,
				EventID: o.EventID, At: o.IssuedAt, Channel: ch})
		}
	}
	keys := make([]offers.Key, 0, len(missed))
	for k := range missed {
		if !got[k] {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b offers.Key) int {
		return cmp.Or(cmp.Compare(a.Tier, b.Tier), slices.Compare(a.Fan[:], b.Fan[:]))
	})
	for _, k := range keys {
		d := missed[k]
		if rep.NoOffer[k.Tier] == nil {
			rep.NoOffer[k.Tier] = map[string]int{}
		}
		rep.NoOffer[k.Tier][string(d.Reason)]++
		if len(rep.Missed) < r.cfg.SampleSize {
			rep.Missed = append(rep.Missed, SampleDecision{FanID: k.Fan, Tier: k.Tier, Index: d.Index,
				Reason: string(d.Reason), Detail: d.Detail})
		}
	}
	return rep, nil
}

func routedCopy(m kafka.Message) bool {
	for _, h := range m.Headers {
		if h.Key == "crescendo-routed-from" {
			return true
		}
	}
	return false
}

func headers(m kafka.Message) []events.Header {
	out := make([]events.Header, len(m.Headers))
	for i, h := range m.Headers {
		out[i] = events.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

// merged reads every partition from a time to the end it had when opened,
// yielding records in time order.
type merged struct {
	readers []*partReader
	h       recHeap
}

type partReader struct {
	r   *kafka.Reader
	end int64 // offset after the last record to read
}

type rec struct {
	m kafka.Message
	p int
}

type recHeap []rec

func (h recHeap) Len() int           { return len(h) }
func (h recHeap) Less(i, j int) bool { return h[i].m.Time.Before(h[j].m.Time) }
func (h recHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *recHeap) Push(x any)        { *h = append(*h, x.(rec)) }
func (h *recHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (r *Runner) open(ctx context.Context, from time.Time) (*merged, error) {
	conn, err := kafka.DialContext(ctx, "tcp", r.cfg.Brokers[0])
	if err != nil {
		return nil, fmt.Errorf("reading partitions: %w", err)
	}
	parts, err := conn.ReadPartitions(r.cfg.Topic)
	_ = conn.Close()
	if err != nil {
		return nil, fmt.Errorf("reading partitions: %w", err)
	}
	mg := &merged{}
	for _, p := range parts {
		start, end, err := r.bounds(ctx, p.ID, from)
		if err != nil {
			mg.close()
			return nil, err
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: r.cfg.Brokers, Topic: r.cfg.Topic, Partition: p.ID,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: time.Second})
		if err := rd.SetOffset(start); err != nil {
			_ = rd.Close()
			mg.close()
			return nil, fmt.Errorf("positioning partition %d: %w", p.ID, err)
		}
		mg.readers = append(mg.readers, &partReader{r: rd, end: end})
		if start < end {
			if err := mg.fill(ctx, len(mg.readers)-1); err != nil {
				mg.close()
				return nil, err
			}
		}
	}
	return mg, nil
}

// bounds returns the first offset at or after from and the log's end.
func (r *Runner) bounds(ctx context.Context, partition int, from time.Time) (int64, int64, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", r.cfg.Brokers[0], r.cfg.Topic, partition)
	if err != nil {
		return 0, 0, fmt.Errorf("reading bounds of partition %d: %w", partition, err)
	}
	defer func() { _ = conn.Close() }()
	_, end, err := conn.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("reading bounds of partition %d: %w", partition, err)
	}
	start, err := conn.ReadOffset(from)
	if err != nil {
		return 0, 0, fmt.Errorf("finding offset at %s in partition %d: %w", from.Format(time.RFC3339), partition, err)
	}
	if start < 0 || start > end { // no record at or after from
		start = end
	}
	return start, end, nil
}

func (mg *merged) fill(ctx context.Context, i int) error {
	pr := mg.readers[i]
	m, err := pr.r.FetchMessage(ctx)
	if err != nil {
		return fmt.Errorf("reading partition %d: %w", i, err)
	}
	heap.Push(&mg.h, rec{m: m, p: i})
	return nil
}

func (mg *merged) next(ctx context.Context) (kafka.Message, bool, error) {
	if mg.h.Len() == 0 {
		return kafka.Message{}, false, nil
	}
	top := heap.Pop(&mg.h).(rec)
	if top.m.Offset+1 < mg.readers[top.p].end {
		if err := mg.fill(ctx, top.p); err != nil {
			return kafka.Message{}, false, err
		}
	}
	return top.m, true, nil
}

func (mg *merged) close() {
	for _, pr := range mg.readers {
		_ = pr.r.Close()
	}
}

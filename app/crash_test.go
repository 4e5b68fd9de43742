package app_test

// Exactly-once effect under crashes (issue #3, acceptance point 5, F7): the
// real binary consumes a stream of more than 100,000 events while the test
// SIGKILLs it at random moments and restarts it; afterwards every (fan,
// performer) index state and every issued offer must equal what one
// straight run of the pipeline over the same records gives.
//
// The random choices (the events and the kill delays) come from fixed seeds,
// logged by each test; CRESCENDO_CRASH_SEED replays another one, and
// CRESCENDO_CRASH_LOGS names a directory to keep the children's logs in.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/broker"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/sessions"
	"github.com/crescendo-hq/crescendo/store"
)

const (
	crashTopic      = "fan-activity"
	crashDLQTopic   = "fan-activity.dlq"
	crashPartitions = 8
	crashGroup      = "crescendo-crash"
	crashFans       = 3000
	crashMinEvents  = 100_000
	// Every consumer of the group must have joined within this long of a
	// kill: the dead member's session (3 s) expires and the group rebalances.
	crashJoinTimeout = 90 * time.Second
)

func TestCrashKilledConsumerMatchesStraightRun(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process 10 times while 100,000 events flow")
	}
	rig := newCrashRig(t, 0xC0FFEE01)
	producer := rig.produce(1500) // events per second: the stream outlasts the kills
	cur := rig.start("c0")
	const kills = 10
	for i := range kills {
		cur = rig.killAndRestart(cur, i, fmt.Sprintf("c%d", i+1))
	}
	rig.finish(producer, cur)
}

func TestCrashRebalanceBetweenTwoConsumersMatchesStraightRun(t *testing.T) {
	if testing.Short() {
		t.Skip("kills one of two group members repeatedly while 100,000 events flow")
	}
	rig := newCrashRig(t, 0xC0FFEE02)
	producer := rig.produce(2200)
	steady := rig.start("steady")
	if err := steady.waitLog("partition loaded", 1, crashJoinTimeout); err != nil {
		t.Fatal(err)
	}
	cur := rig.start("b0")
	const kills = 6
	for i := range kills {
		if steady.exited() {
			t.Fatalf("the steady member exited by itself: %v\n%s", steady.err, steady.logTail())
		}
		cur = rig.killAndRestart(cur, i, fmt.Sprintf("b%d", i+1))
	}
	// A member frozen past its session is a zombie when it wakes up: it may
	// still hold records, or an open checkpoint transaction, from when it
	// owned its partitions.
	for i := range 2 {
		rig.zombie(cur, steady, i)
	}
	// Each start of the killed member rebalanced the group, so the steady
	// member went through a generation for each one, and gave up and took
	// back partitions on the way.
	if g := steady.count("generation started"); g < kills+1 {
		t.Errorf("the steady member started %d generations; %d restarts of the other should have rebalanced the group at least %d times", g, kills, kills+1)
	}
	rig.finish(producer, steady, cur)
}

// crashRig is one broker, one database and the children consuming from them.
type crashRig struct {
	t       *testing.T
	seed    uint64
	bin     string
	brokers []string
	dbURL   string
	env     []string
	st      *store.Store
	killRNG *rand.Rand // kill delays; used by the test goroutine only
	// minEvents is how many events the stream carries at least; crashMinEvents unless a test says less.
	minEvents int

	mu       sync.Mutex
	children []*child
}

func newCrashRig(t *testing.T, seed uint64) *crashRig {
	t.Helper()
	if v := os.Getenv("CRESCENDO_CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("CRESCENDO_CRASH_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("seed %#x (replay with CRESCENDO_CRASH_SEED=%#x)", seed, seed)

	bin := filepath.Join(t.TempDir(), "crescendo")
	build := exec.Command("go", "build", "-o", bin, "../cmd/crescendo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the binary: %v\n%s", err, out)
	}

	b, err := broker.Start(t.Context(), broker.Config{
		Addr: "127.0.0.1:0",
		Topics: []broker.TopicSpec{
			{Name: crashTopic, Partitions: crashPartitions},
			{Name: crashDLQTopic, Partitions: 1},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	// A killed member holds its partitions until its session expires. Kafka
	// accepts sessions of 6 s and more unless the broker says otherwise; this
	// one says 3 s, so that ten kills fit in the time budget.
	if err := setBrokerConfig(t.Context(), b.Addrs(), "group.min.session.timeout.ms", "3000"); err != nil {
		t.Fatal(err)
	}
	dbURL := pgtemp.New(t)
	st, err := store.Open(t.Context(), store.Config{URL: dbURL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	seeded := time.Now()
	if err := seedCrashCatalog(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d fans in %s", crashFans, time.Since(seeded).Round(time.Millisecond))

	key := base64.StdEncoding.EncodeToString(signingKey)
	r := &crashRig{
		t: t, seed: seed, bin: bin, brokers: b.Addrs(), dbURL: dbURL, st: st,
		killRNG:   rand.New(rand.NewPCG(seed, 0x6b696c6c)), // "kill"
		minEvents: crashMinEvents,
		env: append(os.Environ(),
			"KAFKA_BROKERS="+strings.Join(b.Addrs(), ","),
			"KAFKA_TOPIC="+crashTopic,
			"KAFKA_DLQ_TOPIC="+crashDLQTopic,
			"KAFKA_GROUP_ID="+crashGroup,
			"KAFKA_PARTITIONS="+strconv.Itoa(crashPartitions),
			"KAFKA_SESSION_TIMEOUT=3s",
			"KAFKA_REBALANCE_TIMEOUT=6s",
			"KAFKA_HEARTBEAT_INTERVAL=500ms",
			"DATABASE_URL="+dbURL,
			"DATABASE_CREATE=false",
			"HTTP_ADDR=127.0.0.1:0",
			"CRESCENDO_DATA_DIR="+t.TempDir(),
			"OFFER_SIGNING_KEYS=k1:"+key,
			"OFFER_SIGNING_KEY_ID=k1",
			// No Twilio or SendGrid: deliveries fail fast; delivery is not what this checks.
			"TWILIO_ACCOUNT_SID=", "SENDGRID_API_KEY=",
			"DELIVERY_WORKERS=2",
			"LOG_FORMAT=json",
			"LOG_LEVEL=info",
		),
	}
	t.Cleanup(r.cleanup)
	return r
}

func setBrokerConfig(ctx context.Context, brokers []string, name, value string) error {
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return err
	}
	b, err := conn.Controller()
	_ = conn.Close()
	if err != nil {
		return err
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr}
	resp, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeBroker,
			ResourceName: strconv.Itoa(b.ID),
			Configs:      []kafka.IncrementalAlterConfigsRequestConfig{{Name: name, Value: value, ConfigOperation: kafka.ConfigOperationSet}},
		}},
	})
	if err != nil {
		return fmt.Errorf("setting broker config %s: %w", name, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("setting broker config %s: %w", name, r.Error)
		}
	}
	return nil
}

// crashUser is the partner user id of fan i.
func crashUser(i int) string { return fmt.Sprintf("cu%05d", i) }

func seedCrashCatalog(ctx context.Context, st *store.Store) error {
	if err := st.PutPartner(ctx, store.Partner{ID: partnerID, Name: "Streamly", APIKey: partnerKey}); err != nil {
		return err
	}
	for _, p := range [][2]string{{"aurora", "Aurora Lane"}, {"borealis", "Borealis"}, {"cirrus", "Cirrus"}} {
		if err := st.PutPerformer(ctx, p[0], p[1]); err != nil {
			return err
		}
	}
	for _, sh := range []store.Show{
		{ID: "roundhouse", PerformerID: "aurora", Name: "Live at the Roundhouse", StartsAt: time.Date(2027, 3, 1, 20, 0, 0, 0, time.UTC), VenueName: "Roundhouse", VenueLat: 51.54, VenueLon: -0.15},
		{ID: "brixton", PerformerID: "borealis", Name: "Brixton Night", StartsAt: time.Date(2027, 4, 1, 20, 0, 0, 0, time.UTC), VenueName: "Brixton Academy", VenueLat: 51.46, VenueLon: -0.11},
	} {
		if err := st.PutShow(ctx, sh); err != nil {
			return err
		}
	}
	// Three tiers over a week, two over a single (UTC) day: offers depend on
	// the order and the days of the listens, not only on their sum. Cirrus
	// has no rule: its pairs are indexed but never offered.
	// Scoring: a point per minute listened, per week for aurora and per UTC day
	// for borealis, without decay, so that index values read as minutes.
	for _, ps := range []struct {
		id, performer string
		period        time.Duration
	}{{"weekly-minutes", "aurora", 7 * 24 * time.Hour}, {"daily-minutes", "borealis", 24 * time.Hour}} {
		prof := scoring.DefaultProfile()
		prof.ID, prof.StreamMode, prof.StreamThresholdMinutes, prof.StreamCap, prof.HalfLife, prof.StreamPeriod = ps.id, scoring.StreamCount, 1, 255, 0, ps.period
		if err := st.PutProfile(ctx, prof); err != nil {
			return err
		}
		if err := st.SetPerformerScoring(ctx, ps.performer, store.PerformerScoring{ProfileID: ps.id}); err != nil {
			return err
		}
	}
	for _, r := range []offers.Rule{
		{ID: "aurora-presale", PerformerID: "aurora", ShowID: "roundhouse",
			Tiers:    []offers.Tier{{Threshold: 10, Perks: []string{"presale"}}, {Threshold: 40, Perks: []string{"presale", "merch:tour poster"}}, {Threshold: 120, Perks: []string{"meet_and_greet"}}},
			Channels: []offers.Channel{offers.ChannelPush, offers.ChannelEmail}, Lifetime: 48 * time.Hour},
		{ID: "borealis-day", PerformerID: "borealis", ShowID: "brixton",
			Tiers:    []offers.Tier{{Threshold: 15, Perks: []string{"presale"}}, {Threshold: 45, Perks: []string{"vip_upgrade"}}},
			Channels: []offers.Channel{offers.ChannelPush}, Lifetime: 24 * time.Hour},
	} {
		if _, err := st.PutRule(ctx, r); err != nil {
			return err
		}
	}
	fans := make([]store.BulkFan, crashFans)
	for i := range fans {
		// No phone and no email: offers are issued, then fail to deliver at once.
		id := uuid.NewSHA1(uuid.NameSpaceOID, []byte("crash-fan-"+strconv.Itoa(i)))
		fans[i] = store.BulkFan{Fan: store.Fan{ID: id, DisplayName: "Fan " + strconv.Itoa(i), TimeZone: "UTC"}, PartnerUserID: crashUser(i)}
	}
	return st.BulkLoadFans(ctx, partnerID, fans)
}

// eventGen makes a deterministic stream of listens: each fan has its own clock
// in the recent past, advancing by minutes within a listening session and by
// hours between sessions. A few events are out of order, malformed, from an
// unknown partner or about unlinked accounts.
type eventGen struct {
	rng   *rand.Rand
	clock []time.Time
	n     int
}

func newEventGen(seed uint64, now time.Time) *eventGen {
	g := &eventGen{rng: rand.New(rand.NewPCG(seed, 0x6576656e74)), clock: make([]time.Time, crashFans)} // "event"
	// Midnight three days ago: the days of the listens, which one-day windows
	// depend on, are the same on every run with the same seed.
	start := now.UTC().Truncate(24 * time.Hour).Add(-72 * time.Hour)
	for i := range g.clock {
		g.clock[i] = start.Add(time.Duration(g.rng.Int64N(int64(12 * time.Hour))))
	}
	return g
}

func (g *eventGen) next(limit time.Time) kafka.Message {
	r := g.rng
	g.n++
	id := fmt.Sprintf("ev-%07d", g.n)
	u := r.Float64()
	fi := int(u * u * crashFans) // a few heavy listeners, a long tail of light ones
	user := crashUser(fi)
	source := partnerID
	switch x := r.IntN(1000); {
	case x < 3:
		return kafka.Message{Key: []byte(user), Value: []byte(`{"specversion":"1.0","id":"` + id + `","source":`)}
	case x < 6:
		user = fmt.Sprintf("ghost%04d", r.IntN(500)) // not linked: dropped
	case x < 8:
		source = "impostor" // not a partner: dead-lettered
	}
	at := g.clock[fi]
	if r.IntN(50) == 0 {
		at = at.Add(-time.Duration(r.Int64N(int64(40 * time.Minute)))) // late, out of order
	} else {
		gap := time.Minute + time.Duration(r.Int64N(int64(7*time.Minute)))
		if r.IntN(100) < 15 {
			gap = 35*time.Minute + time.Duration(r.Int64N(int64(4*time.Hour))) // the session ended
		}
		at = at.Add(gap).Truncate(time.Millisecond)
		g.clock[fi] = at
	}
	if at.After(limit) {
		at = limit // never future-dated
	}
	performer := "aurora"
	switch p := r.IntN(10); {
	case p >= 9:
		performer = "cirrus"
	case p >= 6:
		performer = "borealis"
	}
	played := 30*time.Second + time.Duration(r.Int64N(int64(5*time.Minute+30*time.Second)))
	v, err := events.Encode(events.Event{ID: id, Source: source, Subject: user, Type: events.TypeListen, Time: at,
		Listen: &events.Listen{Performer: performer, Track: "t", MsPlayed: played.Milliseconds(), Device: "mobile", Country: "GB"}})
	if err != nil {
		panic(err) // the generator's own bug
	}
	return kafka.Message{Key: []byte(user), Value: v}
}

// producer publishes the stream in the background.
type producer struct {
	published atomic.Int64
	stop      chan struct{} // closed when the kills are over
	done      chan error    // the producer's result, once
}

// produce publishes listens at about rate per second until at least
// crashMinEvents are out and the test has called finish: the stream flows
// during every kill.
func (r *crashRig) produce(rate int) *producer {
	p := &producer{stop: make(chan struct{}), done: make(chan error, 1)}
	exited := make(chan struct{})
	gen := newEventGen(r.seed, time.Now())
	go func() {
		defer close(exited)
		p.done <- p.run(r.t.Context(), r.brokers, gen, rate, r.minEvents)
	}()
	r.t.Cleanup(func() { <-exited }) // t.Context is canceled by then
	return p
}

func (p *producer) run(ctx context.Context, brokers []string, gen *eventGen, rate, minEvents int) error {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: crashTopic, Balancer: kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, BatchSize: 1000, Transport: tr}
	defer w.Close()
	const chunk = 250
	tick := time.NewTicker(time.Second * chunk / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			if p.published.Load() >= int64(minEvents) {
				return nil
			}
		default:
		}
		limit := time.Now().Add(-time.Second)
		msgs := make([]kafka.Message, chunk)
		for i := range msgs {
			msgs[i] = gen.next(limit)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("publishing after %d events: %w", p.published.Load(), err)
		}
		p.published.Add(chunk)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// child is one `crescendo serve` process.
type child struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{} // closed once the process has exited and been waited for
	err   error         // Wait's result, set before done is closed
	start time.Time

	mu      sync.Mutex
	partial []byte
	counts  map[string]int // log lines by message
	tail    []string       // the last log lines
	errs    []string       // error-level log lines
	changed chan struct{}  // closed and replaced on every log line
	http    string         // the HTTP address it logged on start
	// handovers holds the attributes of the lines that say where a partition's
	// tenure began or ended, for tests that follow a partition between owners.
	handovers []map[string]any
}

func (r *crashRig) start(name string) *child {
	r.t.Helper()
	c := &child{name: name, done: make(chan struct{}), counts: map[string]int{}, changed: make(chan struct{}), start: time.Now()}
	c.cmd = exec.Command(r.bin, "serve")
	c.cmd.Env = r.env
	var out io.Writer = c
	var keep *os.File
	if dir := os.Getenv("CRESCENDO_CRASH_LOGS"); dir != "" { // keep every child's log
		f, err := os.Create(filepath.Join(dir, r.t.Name()+"-"+name+".log"))
		if err != nil {
			r.t.Fatal(err)
		}
		out, keep = io.MultiWriter(c, f), f
	}
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		r.t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		if keep != nil {
			_ = keep.Close()
		}
		close(c.done)
	}()
	r.mu.Lock()
	r.children = append(r.children, c)
	r.mu.Unlock()
	return c
}

// Write collects the child's log lines (stdout and stderr).
func (c *child) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	rest := c.partial
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		c.line(rest[:i])
		rest = rest[i+1:]
	}
	c.partial = append(c.partial[:0], rest...)
	return len(p), nil
}

func (c *child) line(b []byte) {
	var rec struct{ Level, Msg, HTTP string }
	if err := json.Unmarshal(b, &rec); err != nil {
		rec.Msg, rec.Level = "(not JSON)", "ERROR" // a panic or a runtime error
	}
	if rec.Msg == "crescendo started" {
		c.http = rec.HTTP
	}
	if rec.Msg == "partition loaded" || rec.Msg == "partition released" || rec.Msg == "generation started" {
		var attrs map[string]any
		if json.Unmarshal(b, &attrs) == nil {
			c.handovers = append(c.handovers, attrs)
		}
	}
	c.counts[rec.Msg]++
	c.tail = append(c.tail, string(b))
	if len(c.tail) > 40 {
		c.tail = c.tail[len(c.tail)-40:]
	}
	if rec.Level == "ERROR" && len(c.errs) < 20 {
		c.errs = append(c.errs, string(b))
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *child) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[msg]
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) logTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("last log lines of %s:\n  %s", c.name, strings.Join(c.tail, "\n  "))
}

// waitLog waits until the child has logged msg n times.
func (c *child) waitLog(msg string, n int, timeout time.Duration) error {
	return c.waitFor(timeout, func() (bool, string) {
		got := c.counts[msg]
		return got >= n, fmt.Sprintf("logged %q %d of %d times", msg, got, n)
	})
}

// waitSettled waits until the child's latest generation has loaded every
// partition it was assigned, so that a test's next step does not race the
// loads a rebalance has just begun.
func (c *child) waitSettled(timeout time.Duration) error {
	return c.waitFor(timeout, func() (bool, string) {
		gen, recs := lastGeneration(c.handovers)
		loaded := map[float64]bool{}
		for _, r := range recs {
			if r["msg"] == "partition loaded" {
				loaded[num(r, "partition")] = true
			}
		}
		assigned := int(num(gen, "partitions"))
		return assigned > 0 && len(loaded) >= assigned,
			fmt.Sprintf("loaded %d of the %d partitions of its latest generation", len(loaded), assigned)
	})
}

// waitFor waits, on the child's log signal, until cond holds. cond runs
// under c.mu and says where the child stands, for the error.
func (c *child) waitFor(timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, state := cond()
		changed := c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-c.done:
			c.mu.Lock()
			ok, state = cond() // lines may have landed as it exited
			c.mu.Unlock()
			if ok {
				return nil
			}
			return fmt.Errorf("%s exited (%v) having %s\n%s", c.name, c.err, state, c.logTail())
		case <-deadline.C:
			return fmt.Errorf("%s %s within %s\n%s", c.name, state, timeout, c.logTail())
		}
	}
}

// lastGeneration splits a child's handover records at its last
// "generation started": that record (nil if none) and the records after it.
func lastGeneration(recs []map[string]any) (map[string]any, []map[string]any) {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["msg"] == "generation started" {
			return recs[i], recs[i+1:]
		}
	}
	return nil, recs
}

// kill SIGKILLs the child and reaps it.
func (c *child) kill() error {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", c.name, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(20 * time.Second):
		return fmt.Errorf("%s did not exit after SIGKILL", c.name)
	}
}

// working waits until c has loaded partitions and checkpointed, then for a
// random delay while it works through the stream.
func (r *crashRig) working(c *child) time.Duration {
	r.t.Helper()
	if err := c.waitLog("partition loaded", 1, crashJoinTimeout); err != nil {
		r.t.Fatal(err)
	}
	r.checkpointed(c)
	delay := 50*time.Millisecond + time.Duration(r.killRNG.Int64N(int64(1450*time.Millisecond)))
	select {
	case <-c.done:
		r.t.Fatalf("%s exited by itself (%v)\n%s", c.name, c.err, c.logTail())
	case <-time.After(delay):
	}
	return delay
}

// checkpointed waits until the group checkpoints again; with the stream
// flowing, that is soon after c (a member) took its partitions.
func (r *crashRig) checkpointed(c *child) {
	r.t.Helper()
	before, err := r.committed()
	if err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(crashJoinTimeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		now, err := r.committed()
		if err != nil {
			r.t.Fatal(err)
		}
		if now > before {
			return
		}
		if c.exited() {
			r.t.Fatalf("%s exited by itself (%v)\n%s", c.name, c.err, c.logTail())
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no checkpoint within %s (waiting on %s)\n%s", crashJoinTimeout, c.name, c.logTail())
		}
	}
}

// killAndRestart kills c at a random moment while it works and starts its replacement.
func (r *crashRig) killAndRestart(c *child, i int, next string) *child {
	r.t.Helper()
	delay := r.working(c)
	committed, err := r.committed()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := c.kill(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("kill %d: %s SIGKILLed %s after a checkpoint (up %s, %d partition loads); %d records checkpointed by then",
		i+1, c.name, delay.Round(time.Millisecond), time.Since(c.start).Round(100*time.Millisecond), c.count("partition loaded"), committed)
	return r.start(next)
}

// zombie freezes c (SIGSTOP) at a random moment while it works, until its
// session has expired, other has taken its partitions and the group has
// checkpointed again; then it lets c go on (SIGCONT). c wakes up as a zombie
// that may hold records it read as the owner, or a checkpoint transaction
// it opened as the owner: what it commits must be fenced or come first.
func (r *crashRig) zombie(c, other *child, i int) {
	r.t.Helper()
	delay := r.working(c)
	gens, loads := other.count("generation started"), other.count("partition loaded")
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
	stopped := time.Now()
	if err := other.waitLog("generation started", gens+1, crashJoinTimeout); err != nil {
		r.t.Fatal(err)
	}
	r.checkpointed(other)
	// A partition whose checkpoint transaction c left open stays locked, and
	// other cannot load it until c goes on.
	loaded := other.count("partition loaded") - loads
	cgens := c.count("generation started")
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("zombie %d: %s SIGSTOPped %s after a checkpoint, SIGCONTed %s later; %s had loaded %d of %d partitions by then",
		i+1, c.name, delay.Round(time.Millisecond), time.Since(stopped).Round(100*time.Millisecond), other.name, loaded, crashPartitions)
	// It notices it lost the group, rejoins and gets partitions back.
	if err := c.waitLog("generation started", cgens+1, crashJoinTimeout); err != nil {
		r.t.Fatal(err)
	}
}

// storedOffsets returns the group's next offset per partition from Postgres.
func (r *crashRig) storedOffsets() (map[int]int64, error) {
	rows, err := r.st.Pool().Query(r.t.Context(), `SELECT partition, next_offset FROM consumer_offsets
		WHERE group_id = $1 AND topic = $2`, crashGroup, crashTopic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var p int
		var next int64
		if err := rows.Scan(&p, &next); err != nil {
			return nil, err
		}
		out[p] = next
	}
	return out, rows.Err()
}

func (r *crashRig) committed() (int64, error) {
	offs, err := r.storedOffsets()
	var n int64
	for _, o := range offs {
		n += max(o, 0)
	}
	return n, err
}

func (r *crashRig) logEnds() map[int]int64 {
	r.t.Helper()
	out := map[int]int64{}
	for p := range crashPartitions {
		conn, err := kafka.DialLeader(r.t.Context(), "tcp", r.brokers[0], crashTopic, p)
		if err != nil {
			r.t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		_ = conn.Close()
		if err != nil {
			r.t.Fatal(err)
		}
		out[p] = last
	}
	return out
}

// finish ends the stream, waits for the running children to checkpoint the
// end of every partition, stops them with SIGTERM and compares the database
// with a straight run over the same records.
func (r *crashRig) finish(p *producer, running ...*child) {
	t := r.t
	t.Helper()
	close(p.stop)
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	ends := r.logEnds()
	var total int64
	for _, e := range ends {
		total += e
	}
	t.Logf("published %d events; the topic holds %d records", p.published.Load(), total)
	if total < int64(r.minEvents) {
		t.Fatalf("the topic holds %d records, want at least %d", total, r.minEvents)
	}

	began := time.Now()
	deadline := time.Now().Add(120 * time.Second)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		offs, err := r.storedOffsets()
		if err != nil {
			t.Fatal(err)
		}
		if maps.Equal(offs, ends) {
			break
		}
		for _, c := range running {
			if c.exited() {
				t.Fatalf("%s exited by itself (%v)\n%s", c.name, c.err, c.logTail())
			}
		}
		if time.Now().After(deadline) {
			var tails []string
			for _, c := range running {
				tails = append(tails, c.logTail())
			}
			t.Fatalf("stored offsets %v never reached the log ends %v\n%s", offs, ends, strings.Join(tails, "\n"))
		}
	}
	t.Logf("caught up with the log end %s after the stream ended", time.Since(began).Round(time.Millisecond))

	for _, c := range running {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range running {
		select {
		case <-c.done:
		case <-time.After(40 * time.Second):
			t.Fatalf("%s did not stop within 40s of SIGTERM\n%s", c.name, c.logTail())
		}
		if c.err != nil || c.count("stopped") != 1 {
			t.Errorf("%s exited with %v after SIGTERM, want a clean stop\n%s", c.name, c.err, c.logTail())
		}
	}
	r.report()
	if offs, err := r.storedOffsets(); err != nil || !maps.Equal(offs, ends) {
		t.Fatalf("stored offsets moved to %v (%v) after the stop; log ends %v", offs, err, ends)
	}
	r.compare(ends)
}

// report logs what the children went through: fencing, and error-level lines
// (expected only for connection trouble around kills).
func (r *crashRig) report() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var fenced, gens, loads int
	for _, c := range r.children {
		fenced += c.count("partition fenced by another owner; reloading")
		gens += c.count("generation started")
		loads += c.count("partition loaded")
		c.mu.Lock()
		for _, e := range c.errs {
			r.t.Logf("%s logged: %s", c.name, e)
		}
		c.mu.Unlock()
	}
	r.t.Logf("%d processes, %d generations, %d partition loads, %d fenced checkpoints", len(r.children), gens, loads, fenced)
}

// refOffer is what the straight run says about one offer.
type refOffer struct {
	partition int
	eventID   string
	index     float64
}

// compare checks the database against the records run once, in order, per partition.
func (r *crashRig) compare(ends map[int]int64) {
	t := r.t
	t.Helper()
	ctx := t.Context()
	dir, err := r.st.NewDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := r.st.NewRuleSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scorers, err := r.st.NewScorers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	decoder, err := events.NewDecoder(events.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	refPairs := map[int]map[pipeline.PairKey]scoring.PairState{}
	refSessions := map[int]map[uuid.UUID]sessions.Session{}
	refOffers := map[offers.Key]refOffer{}
	refContribs := map[contribKey]contribSum{}
	var applied, rejected, dropped int
	for p := range crashPartitions {
		part, err := pipeline.New(pipeline.Config{Directory: dir, Rules: rules, Scorers: scorers})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range readPartition(t, r.brokers, p, ends[p]) {
			h := make([]events.Header, len(m.Headers))
			for i, x := range m.Headers {
				h[i] = events.Header{Key: x.Key, Value: x.Value}
			}
			ev, err := decoder.Decode(m.Value, h)
			if err != nil {
				rejected++
				continue
			}
			res, err := part.Apply(ev)
			switch {
			case err != nil:
				rejected++
			case res.Dropped:
				dropped++
			default:
				applied++
			}
			for _, o := range res.Offers {
				if _, dup := refOffers[o.Key()]; dup {
					t.Fatalf("the straight run issued %v twice", o.Key())
				}
				refOffers[o.Key()] = refOffer{partition: p, eventID: o.EventID, index: o.IndexValue}
			}
		}
		full := part.State()
		refPairs[p], refSessions[p] = full.Pairs, full.Sessions
		for _, c := range part.Flush().Contributions {
			k := contribKey{c.Fan, c.Performer, string(c.Signal), c.EventID}
			refContribs[k] = contribSum{refContribs[k].n + 1, refContribs[k].points + c.Points}
		}
	}
	t.Logf("straight run: %d applied, %d dropped, %d dead-lettered; %d offers", applied, dropped, rejected, len(refOffers))
	if len(refOffers) < 100 || dropped == 0 || rejected == 0 {
		t.Fatalf("the stream is too tame to prove much: %d offers, %d dropped, %d dead-lettered", len(refOffers), dropped, rejected)
	}

	// Pair states, partition by partition, both ways.
	var diffs []string
	pairs := 0
	for p := range crashPartitions {
		st, next, err := r.st.LoadPartition(ctx, store.PartitionID{Group: crashGroup, Topic: crashTopic, Partition: p})
		if err != nil {
			t.Fatal(err)
		}
		if next != ends[p] {
			diffs = append(diffs, fmt.Sprintf("partition %d: stored offset %d, log end %d", p, next, ends[p]))
		}
		pairs += len(st.Pairs)
		for _, k := range slices.SortedFunc(maps.Keys(refPairs[p]), compareKeys) {
			want := refPairs[p][k]
			got, ok := st.Pairs[k]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("partition %d %s/%s: not stored; straight run %s (an event was lost)", p, k.Fan, k.Performer, counter(want)))
			case got != want:
				diffs = append(diffs, fmt.Sprintf("partition %d %s/%s: stored %s, straight run %s (an event was lost or counted twice)", p, k.Fan, k.Performer, counter(got), counter(want)))
			}
		}
		for _, k := range slices.SortedFunc(maps.Keys(st.Pairs), compareKeys) {
			if _, ok := refPairs[p][k]; !ok {
				diffs = append(diffs, fmt.Sprintf("partition %d %s/%s: stored %s, absent from the straight run", p, k.Fan, k.Performer, counter(st.Pairs[k])))
			}
		}
		for _, f := range slices.SortedFunc(maps.Keys(refSessions[p]), compareUUIDs) {
			want := refSessions[p][f]
			got, ok := st.Sessions[f]
			if !ok || !got.Start.Equal(want.Start) || !got.Last.Equal(want.Last) {
				diffs = append(diffs, fmt.Sprintf("partition %d fan %s: session %s, straight run %s", p, f, session(got, ok), session(want, true)))
			}
		}
		for _, f := range slices.SortedFunc(maps.Keys(st.Sessions), compareUUIDs) {
			if _, ok := refSessions[p][f]; !ok {
				diffs = append(diffs, fmt.Sprintf("partition %d fan %s: session %s, absent from the straight run", p, f, session(st.Sessions[f], true)))
			}
		}
	}
	failDiffs(t, "pair states and sessions", diffs)

	// Offers: each once, the same set, crossed by the same event at the same index.
	stored, err := r.st.Offers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diffs = nil
	got := map[offers.Key]store.StoredOffer{}
	for _, o := range stored {
		if _, dup := got[o.Key()]; dup {
			diffs = append(diffs, fmt.Sprintf("offer %v stored twice", o.Key()))
		}
		got[o.Key()] = o
	}
	for _, k := range slices.SortedFunc(maps.Keys(refOffers), compareOfferKeys) {
		want := refOffers[k]
		o, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("offer %v: not issued; the straight run issued it on %s at index %.2f", k, want.eventID, want.index))
		case o.Partition != want.partition || o.EventID != want.eventID || o.IndexValue != want.index:
			diffs = append(diffs, fmt.Sprintf("offer %v: issued on partition %d by %s at index %.2f; straight run: partition %d, %s, index %.2f",
				k, o.Partition, o.EventID, o.IndexValue, want.partition, want.eventID, want.index))
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(got), compareOfferKeys) {
		if _, ok := refOffers[k]; !ok {
			o := got[k]
			diffs = append(diffs, fmt.Sprintf("offer %v: issued by %s at index %.2f, absent from the straight run", k, o.EventID, o.IndexValue))
		}
	}
	failDiffs(t, "offers", diffs)

	// The contributions behind the indexes (F6): each event's, once.
	rows, err := r.st.Pool().Query(ctx, `SELECT fan_id, performer_id, signal, event_id, count(*), sum(points)
		FROM contributions GROUP BY 1, 2, 3, 4`)
	if err != nil {
		t.Fatal(err)
	}
	gotContribs := map[contribKey]contribSum{}
	for rows.Next() {
		var k contribKey
		var c contribSum
		if err := rows.Scan(&k.fan, &k.performer, &k.signal, &k.event, &c.n, &c.points); err != nil {
			t.Fatal(err)
		}
		gotContribs[k] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	diffs = nil
	for _, k := range slices.SortedFunc(maps.Keys(refContribs), compareContribKeys) {
		if got, want := gotContribs[k], refContribs[k]; got != want {
			diffs = append(diffs, fmt.Sprintf("contribution %+v: stored %d times (%g points), straight run %d (%g points)", k, got.n, got.points, want.n, want.points))
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(gotContribs), compareContribKeys) {
		if _, ok := refContribs[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("contribution %+v: stored %d times, absent from the straight run", k, gotContribs[k].n))
		}
	}
	if len(refContribs) == 0 {
		diffs = append(diffs, "the straight run kept no contributions")
	}
	failDiffs(t, "contributions", diffs)

	// Every offer has exactly one delivery job, and no job lacks its offer.
	rows, err = r.st.Pool().Query(ctx, `SELECT args->>'offer_id', count(*) FROM river_job WHERE kind = 'deliver_offer' GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		jobs[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	diffs = nil
	for _, o := range stored {
		if n := jobs[o.ID.String()]; n != 1 {
			diffs = append(diffs, fmt.Sprintf("offer %s %v has %d delivery jobs, want 1", o.ID, o.Key(), n))
		}
		delete(jobs, o.ID.String())
	}
	for _, id := range slices.Sorted(maps.Keys(jobs)) {
		diffs = append(diffs, fmt.Sprintf("delivery job for offer %s, which does not exist", id))
	}
	failDiffs(t, "delivery jobs", diffs)
	t.Logf("%d pairs, their sessions, %d contributions and %d offers equal the straight run", pairs, len(refContribs), len(stored))
}

// contribKey names one event's contribution to one pair's index.
type contribKey struct {
	fan                      uuid.UUID
	performer, signal, event string
}

type contribSum struct {
	n      int
	points float64
}

func compareContribKeys(a, b contribKey) int {
	if c := bytes.Compare(a.fan[:], b.fan[:]); c != 0 {
		return c
	}
	return cmp.Or(strings.Compare(a.performer, b.performer), strings.Compare(a.signal, b.signal), strings.Compare(a.event, b.event))
}

func failDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) == 0 {
		return
	}
	shown := diffs[:min(len(diffs), 12)]
	t.Fatalf("%s differ from the straight run in %d places; the first %d:\n  %s", what, len(diffs), len(shown), strings.Join(shown, "\n  "))
}

func compareKeys(a, b pipeline.PairKey) int {
	if c := bytes.Compare(a.Fan[:], b.Fan[:]); c != 0 {
		return c
	}
	return strings.Compare(a.Performer, b.Performer)
}

func compareUUIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

func session(s sessions.Session, ok bool) string {
	if !ok {
		return "none"
	}
	return s.Start.UTC().Format(time.RFC3339Nano) + ".." + s.Last.UTC().Format(time.RFC3339Nano)
}

func compareOfferKeys(a, b offers.Key) int {
	if c := bytes.Compare(a.Fan[:], b.Fan[:]); c != 0 {
		return c
	}
	if c := strings.Compare(a.Rule, b.Rule); c != 0 {
		return c
	}
	return a.Tier - b.Tier
}

func counter(c scoring.PairState) string {
	return fmt.Sprintf("%+v", c)
}

// readPartition reads a partition's records from its start up to end.
func readPartition(t *testing.T, brokers []string, partition int, end int64) []kafka.Message {
	t.Helper()
	if end == 0 {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: crashTopic, Partition: partition,
		// MaxWait is also how long kafka-go waits for a fetch response to begin:
		// an in-process broker under the race detector needs more than 50 ms for 1 MB.
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second, ErrorLogger: kafka.LoggerFunc(t.Logf)})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out := make([]kafka.Message, 0, end)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reading partition %d after %d of %d records: %v", partition, len(out), end, err)
		}
		out = append(out, m)
		if m.Offset >= end-1 {
			return out
		}
	}
}

// cleanup kills whatever still runs: on a failure, or after a clean stop (a no-op).
func (r *crashRig) cleanup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.children {
		if !c.exited() {
			if err := c.kill(); err != nil {
				r.t.Error(err)
			}
		}
	}
}

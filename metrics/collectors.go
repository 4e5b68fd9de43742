package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crescendo-hq/crescendo/consumers"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/store"
)

// ConsumerStats is what the consumer collector reads from a consumer.
type ConsumerStats interface {
	Stats() consumers.Stats
	DeadLetteredByReason() map[events.Reason]int64
	DroppedByReason() map[string]int64
	Assigned() []int
}

// LagSource tells how far behind this process's partitions are.
type LagSource interface {
	// Lag returns, per partition given, the records in the log after the
	// partition's last durable checkpoint.
	Lag(ctx context.Context, partitions []int) (map[int]int64, error)
}

// ConsumerConfig configures the consumer collector.
type ConsumerConfig struct {
	Consumer ConsumerStats
	// Lag, when set, adds crescendo_consumer_lag per owned partition.
	Lag LagSource
	// ScrapeTimeout bounds the lag look-up of one scrape; default 2s.
	ScrapeTimeout time.Duration
}

// RegisterConsumer exports a consumer's running totals, read at scrape time
// from the counters it keeps anyway: no extra cost per event.
func (m *Metrics) RegisterConsumer(cfg ConsumerConfig) {
	c := &consumerCollector{
		cfg:          cfg,
		deadLettered: m.desc("events_dead_lettered_total", "counter", "Records written to the dead-letter topic, by reason.", "reason"),
		dropped:      m.desc("events_dropped_total", "counter", "Events about unlinked accounts or outside the fan's consent scope, counted and forgotten, by reason.", "reason"),
		updates:      m.desc("index_updates_total", "counter", "Events applied to a fan's index."),
		issued:       m.desc("offers_issued_total", "counter", "Offers inserted by this process's checkpoints."),
		checkpoints:  m.desc("checkpoints_total", "counter", "Successful checkpoints."),
		fenced:       m.desc("checkpoints_fenced_total", "counter", "Checkpoints refused because another owner moved the partition's offset (a zombie after a rebalance)."),
		routed:       m.desc("events_routed_total", "counter", "Events of fans whose state lives in another partition: out (copied there), in (applied here), repeat (skipped, applied before).", "direction"),
		assigned:     m.desc("consumer_partitions_assigned", "gauge", "Partitions of the activity topic this process owns."),
		lag:          m.desc("consumer_lag", "gauge", "Records after the last durable checkpoint, per partition this process owns.", "partition"),
	}
	if c.cfg.ScrapeTimeout == 0 {
		c.cfg.ScrapeTimeout = 2 * time.Second
	}
	m.Registry.MustRegister(c)
}

type consumerCollector struct {
	cfg                                                                                ConsumerConfig
	deadLettered, dropped, updates, issued, checkpoints, fenced, routed, assigned, lag *prometheus.Desc
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.deadLettered, c.dropped, c.updates, c.issued, c.checkpoints, c.fenced, c.routed, c.assigned, c.lag} {
		ch <- d
	}
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cfg.Consumer.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	byReason := c.cfg.Consumer.DeadLetteredByReason()
	for _, r := range sortedKeys(byReason) {
		counter(c.deadLettered, byReason[r], string(r))
	}
	dropped := c.cfg.Consumer.DroppedByReason()
	for _, r := range sortedKeys(dropped) {
		counter(c.dropped, dropped[r], r)
	}
	counter(c.updates, st.Applied)
	counter(c.issued, st.OffersIssued)
	counter(c.checkpoints, st.Checkpoints)
	counter(c.fenced, st.Fenced)
	counter(c.routed, st.Routed, "out")
	counter(c.routed, st.RoutedIn, "in")
	counter(c.routed, st.RoutedRepeat, "repeat")
	owned := c.cfg.Consumer.Assigned()
	ch <- prometheus.MustNewConstMetric(c.assigned, prometheus.GaugeValue, float64(len(owned)))
	if c.cfg.Lag == nil || len(owned) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ScrapeTimeout)
	defer cancel()
	lag, err := c.cfg.Lag.Lag(ctx, owned)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.lag, err)
		return
	}
	for _, p := range sortedKeys(lag) {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag[p]), strconv.Itoa(p))
	}
}

// OfferCounter counts offers in the store.
type OfferCounter interface {
	SummarizeOffers(ctx context.Context) (store.OfferSummary, error)
}

// RegisterOffers exports crescendo_offers by state and channel, counted in
// the store at most once per cacheFor (default 15s) whatever the scrape rate.
// Every replica reports the same cluster-wide figures: aggregate with max.
func (m *Metrics) RegisterOffers(counter OfferCounter, cacheFor time.Duration) {
	if cacheFor <= 0 {
		cacheFor = 15 * time.Second
	}
	c := &offersCollector{
		desc: m.desc("offers", "gauge", "Offers in the store, by state (issued, delivered, failed, expired) and delivery channel (none before delivery); cluster-wide.", "state", "channel"),
		cache: &cached[store.OfferSummary]{period: cacheFor, load: func(ctx context.Context) (store.OfferSummary, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return counter.SummarizeOffers(ctx)
		}},
	}
	m.Registry.MustRegister(c)
}

type offersCollector struct {
	desc  *prometheus.Desc
	cache *cached[store.OfferSummary]
}

func (c *offersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *offersCollector) Collect(ch chan<- prometheus.Metric) {
	sum, err := c.cache.get(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for k, n := range sum.ByStatusChannel {
		channel := k[1]
		if channel == "" {
			channel = "none"
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k[0], channel)
	}
}

// Package metrics defines every Prometheus metric Crescendo exports, in one
// place, so that the Grafana dashboard in deploy/ and the code cannot drift
// apart (a test checks every dashboard expression against Names).
//
// Hot paths pay little: the consumer's totals are read from its own counters
// at scrape time (Consumer, a collector), events by type arrive as per-batch
// counts, checkpoint and job metrics come from wrappers around the interfaces
// the consumer and the scheduler already call, and table-backed figures
// (offers by state and channel) are queried at most once per CacheFor.
package metrics

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every Crescendo metric.
const Namespace = "crescendo"

// Metrics holds the registry and the metrics code updates directly.
type Metrics struct {
	Registry *prometheus.Registry

	// EventsRead counts records read from the activity topic by event type
	// ("invalid" for records that did not decode).
	EventsRead *prometheus.CounterVec
	// CheckpointDuration is the time of each successful checkpoint commit.
	CheckpointDuration prometheus.Histogram
	// CheckpointFailures counts commits that failed (fenced or an error).
	CheckpointFailures *prometheus.CounterVec
	// PairsWritten counts (fan, performer) index states written by checkpoints.
	PairsWritten prometheus.Counter
	// ThresholdCrossings counts crossings of rule tiers by outcome: "offer",
	// or the reason no offer was issued (recorded when the reason changes).
	ThresholdCrossings *prometheus.CounterVec
	// DeliveryLatency is the time from an offer's issue to a provider (or a
	// push stream) accepting it, by channel.
	DeliveryLatency *prometheus.HistogramVec
	// DeliveriesGivenUp counts offers failed because their delivery was
	// given up, by how: "retries" (the last attempt failed) or "discarded"
	// (the sweep found the job discarded without a worker ending it).
	DeliveriesGivenUp *prometheus.CounterVec
	// ProviderRequests times calls to Twilio and SendGrid by provider,
	// operation and outcome.
	ProviderRequests *prometheus.HistogramVec
	// ProviderErrors counts provider errors by provider and code (Twilio's
	// error code, else the HTTP status, or "timeout" for an unknown outcome).
	ProviderErrors *prometheus.CounterVec
	// JobRuns counts scheduled job runs by job and outcome (ok, error, busy).
	JobRuns *prometheus.CounterVec
	// JobDuration times job runs that ran here.
	JobDuration *prometheus.HistogramVec
	// HTTPRequests counts API requests by route pattern and status code.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration times API requests by route pattern (streams excluded).
	HTTPDuration *prometheus.HistogramVec
	// IngestEvents counts events partners posted over HTTP (F23), by partner
	// and outcome: accepted, or the rejection reason.
	IngestEvents *prometheus.CounterVec

	mu    sync.Mutex
	names map[string]string // metric name → type, for the dashboard test
}

// New returns the metrics registered on a new registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), names: map[string]string{}}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.EventsRead = m.counterVec("events_read_total", "Records read from the activity topic, by event type (invalid: did not decode).", "type")
	m.CheckpointDuration = register(m, "checkpoint_duration_seconds", "histogram", prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "checkpoint_duration_seconds",
		Help:    "Time of each successful checkpoint commit (state, offers, delivery jobs and offset in one transaction).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}))
	m.CheckpointFailures = m.counterVec("checkpoint_failures_total", "Checkpoint commits that failed, by reason (fenced: another owner moved the offset; error).", "reason")
	m.PairsWritten = register(m, "index_pairs_written_total", "counter", prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "index_pairs_written_total", Help: "(fan, performer) index states written by checkpoints.",
	}))
	m.ThresholdCrossings = m.counterVec("threshold_crossings_total", "Rule tier crossings, by outcome: offer, or the reason there was none (counted when the reason changes).", "outcome")
	m.DeliveryLatency = m.histogramVec("delivery_latency_seconds", "Time from an offer's issue to its delivery being accepted, by channel.",
		[]float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}, "channel")
	m.DeliveriesGivenUp = m.counterVec("deliveries_given_up_total", "Offers failed because their delivery was given up, by how (retries: the last attempt failed; discarded: the sweep found the job discarded).", "how")
	m.ProviderRequests = m.histogramVec("provider_request_duration_seconds", "Calls to Twilio and SendGrid, by provider, operation and outcome (ok, error).",
		prometheus.ExponentialBuckets(0.01, 2, 12), "provider", "op", "outcome")
	m.ProviderErrors = m.counterVec("provider_errors_total", "Errors from Twilio and SendGrid, by provider and code (Twilio error code, else HTTP status; timeout: unknown outcome).", "provider", "code")
	m.JobRuns = m.counterVec("job_runs_total", "Scheduled job runs, by job and outcome (ok, error, busy: running on another replica).", "job", "outcome")
	m.JobDuration = m.histogramVec("job_duration_seconds", "Time of the scheduled job runs made by this process, by job.",
		prometheus.ExponentialBuckets(0.001, 4, 10), "job")
	m.HTTPRequests = m.counterVec("http_requests_total", "HTTP API requests, by route and status code.", "route", "code")
	m.HTTPDuration = m.histogramVec("http_request_duration_seconds", "HTTP API request time by route (push streams excluded).",
		prometheus.DefBuckets, "route")
	m.IngestEvents = m.counterVec("ingest_events_total", "Events partners posted over HTTP, by partner and outcome (accepted or the rejection reason).", "partner", "outcome")
	return m
}

func register[C prometheus.Collector](m *Metrics, name, typ string, c C) C {
	m.Registry.MustRegister(c)
	m.addName(name, typ)
	return c
}

func (m *Metrics) addName(name, typ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names[Namespace+"_"+name] = typ
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(m, name, "counter", prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels))
}

func (m *Metrics) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(m, name, "histogram", prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels))
}

// desc makes the description of a metric a collector exports and records its name.
func (m *Metrics) desc(name, typ, help string, labels ...string) *prometheus.Desc {
	m.addName(name, typ)
	return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
}

// Names returns every Crescendo metric name (as exposed, without the
// _bucket, _sum and _count series of histograms) with its type: counter,
// gauge or histogram.
func (m *Metrics) Names() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.names)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, ErrorHandling: promhttp.ContinueOnError})
}

// ObserveDelivery records an offer's delivery over channel, issued at issuedAt.
func (m *Metrics) ObserveDelivery(channel string, issuedAt, deliveredAt time.Time) {
	m.DeliveryLatency.WithLabelValues(channel).Observe(max(deliveredAt.Sub(issuedAt), 0).Seconds())
}

// Middleware counts and times requests by the route pattern that served them
// (never the raw path, which carries ids). Streams are counted, not timed.
func (m *Metrics) Middleware(next http.Handler, isStream func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set by the ServeMux on this request
		if route == "" {
			route = "unmatched"
		}
		m.HTTPRequests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		if isStream == nil || !isStream(r) {
			m.HTTPDuration.WithLabelValues(route).Observe(time.Since(began).Seconds())
		}
	})
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines (push streams).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cached runs a query at most once per period and serves the last answer in
// between: scrapes of table-backed figures must not load Postgres.
type cached[T any] struct {
	period time.Duration
	load   func(ctx context.Context) (T, error)

	mu   sync.Mutex
	at   time.Time
	last T
	err  error
}

func (c *cached[T]) get(ctx context.Context) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= c.period {
		c.last, c.err = c.load(ctx)
		c.at = time.Now()
	}
	return c.last, c.err
}

// sortedKeys returns a map's keys in order, so collectors emit series in a stable order.
func sortedKeys[K interface{ ~string | ~int }, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Catalog returns the name and type of every metric a running process
// exports (those of its collectors included), without any process behind it:
// for checking dashboards and alerts against the code.
func Catalog() map[string]string {
	m := New()
	m.RegisterConsumer(ConsumerConfig{})
	m.RegisterOffers(nil, 0)
	return m.Names()
}

package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/logs"
	"github.com/crescendo-hq/crescendo/store"
)

// syncBuffer is a log destination the test reads while the app writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scrape reads /metrics and returns the families by name.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the counter, gauge or histogram count of the series with
// exactly these labels, and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// The end-to-end run of e2e_test.go, watched from the outside: what /metrics
// says about it, and what the logs (JSON, at debug level) carry and must not.
func TestEndToEndMetricsAndLogsWithoutPersonalData(t *testing.T) {
	e := newEnv(t)
	out := &syncBuffer{}
	logger, err := logs.New(out, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	e.logger = logger
	fans := []fan{
		{id: uuid.New(), user: "u-push", phone: "+14155550101"},
		{id: uuid.New(), user: "u-sms", phone: "+14155550102"},
		{id: uuid.New(), user: "u-email", email: "fan@example.com"},
		// Twilio refuses this number (21610, it texted STOP): the offer goes by email.
		{id: uuid.New(), user: "u-stop", phone: "+14155550199", email: "stopped.fan@example.org"},
	}
	e.sb.Twilio.OptOut("+14155550199")
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, fans) })
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	stream := openStream(t, base, partnerKey, "u-push")
	eventually(t, 5*time.Second, "the push stream to register", func() bool { return a.Push.Online(fans[0].id) })
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []kafka.Message
	for i := range 4 {
		for _, f := range fans {
			msgs = append(msgs, listen(f.user, fmt.Sprintf("%s-%d", f.user, i), now.Add(time.Duration(i)*time.Minute), "aurora", 3))
		}
	}
	msgs = append(msgs,
		kafka.Message{Key: []byte("u-sms"), Value: []byte("this is not json")},
		listen("stranger", "s-1", now, "aurora", 30),
	)
	e.publish(msgs...)
	eventually(t, 30*time.Second, "four delivered offers", func() bool {
		sum, err := a.Store.SummarizeOffers(t.Context())
		return err == nil && sum.ByStatus[store.OfferDelivered] == 4
	})
	select {
	case <-stream:
	case <-time.After(10 * time.Second):
		t.Fatal("no push message")
	}
	eventually(t, 10*time.Second, "every event's outcome counted", func() bool {
		st := a.Consumer.Stats()
		return st.Applied+st.Dropped+st.DeadLettered == int64(len(msgs))
	})

	// A request with the caller's own id: answered with it, and logged with it.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/readyz", nil)
	req.Header.Set("X-Request-Id", "req-ops-test-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); resp.StatusCode != 200 || got != "req-ops-test-1" {
		t.Errorf("readyz: status %d, X-Request-Id %q", resp.StatusCode, got)
	}

	// Lag reaches 0 on every partition once everything is checkpointed; the
	// queue-admission job (every second) has run by then.
	var fams map[string]*dto.MetricFamily
	eventually(t, 20*time.Second, "zero lag on all 4 partitions and a job run", func() bool {
		fams = scrape(t, base)
		for p := range partitions {
			if v, ok := value(fams, "crescendo_consumer_lag", "partition", fmt.Sprint(p)); !ok || v != 0 {
				return false
			}
		}
		v, _ := value(fams, "crescendo_job_runs_total", "job", "queue-admission", "outcome", "ok")
		return v >= 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		// 16 listens, the stranger's (dropped) and no impostor: 17 decoded listens, 1 malformed record.
		{"crescendo_events_read_total", []string{"type", "listen"}, 17},
		{"crescendo_events_read_total", []string{"type", "invalid"}, 1},
		{"crescendo_events_dead_lettered_total", []string{"reason", "malformed"}, 1},
		{"crescendo_events_dropped_total", []string{"reason", "unlinked_account"}, 1},
		{"crescendo_index_updates_total", nil, 16},
		{"crescendo_threshold_crossings_total", []string{"outcome", "offer"}, 4},
		{"crescendo_offers_issued_total", nil, 4},
		{"crescendo_consumer_partitions_assigned", nil, 4},
		{"crescendo_offers", []string{"state", "delivered", "channel", "push"}, 1},
		{"crescendo_offers", []string{"state", "delivered", "channel", "sms"}, 1},
		{"crescendo_offers", []string{"state", "delivered", "channel", "email"}, 2},
		{"crescendo_delivery_latency_seconds", []string{"channel", "push"}, 1},
		{"crescendo_delivery_latency_seconds", []string{"channel", "sms"}, 1},
		{"crescendo_delivery_latency_seconds", []string{"channel", "email"}, 2},
		{"crescendo_provider_errors_total", []string{"provider", "twilio", "code", "21610"}, 1},
		{"crescendo_provider_request_duration_seconds", []string{"provider", "sendgrid", "op", "send", "outcome", "ok"}, 2},
		{"crescendo_http_requests_total", []string{"route", "GET /readyz", "code", "200"}, 1},
	} {
		if got, ok := value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if v, _ := value(fams, "crescendo_checkpoint_duration_seconds"); v < 1 {
		t.Errorf("crescendo_checkpoint_duration_seconds observed %v commits, want some", v)
	}
	a.Shutdown(context.Background()) // flush every log line before reading them

	// Every line is JSON; request and event ids are there; no contact point or name is.
	logged := out.String()
	var sawRequestID bool
	sc := bufio.NewScanner(strings.NewReader(logged))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if rec["msg"] == "http request" && rec["request_id"] == "req-ops-test-1" && rec["route"] == "GET /readyz" {
			sawRequestID = true
		}
	}
	if lines < 20 || !sawRequestID {
		t.Errorf("%d log lines; the readyz request logged with its id: %v", lines, sawRequestID)
	}
	for _, f := range fans {
		for _, secret := range []string{f.phone, strings.TrimPrefix(f.phone, "+"), f.email, "Fan " + f.user} {
			if secret != "" && strings.Contains(logged, secret) {
				i := strings.Index(logged, secret)
				t.Errorf("the logs carry %q: …%s…", secret, logged[max(0, i-200):min(len(logged), i+100)])
			}
		}
	}
}

type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func readyz(t *testing.T, base string) (int, readiness) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	return resp.StatusCode, r
}

// /readyz names what is wrong: a migration the database lacks, then a broker gone.
func TestReadinessNamesEachFailingCheck(t *testing.T) {
	e := newEnv(t)
	e.settings.ShutdownTimeout = 5 * time.Second // the broker is gone by then
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, nil) })
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr
	allOK := map[string]string{"broker": "ok", "database": "ok", "migrations": "ok", "partitions": "ok"}
	eventually(t, 30*time.Second, "ready", func() bool {
		code, r := readyz(t, base)
		return code == 200 && r.Ready && maps.Equal(r.Checks, allOK)
	})

	// The newest migration un-applied, as a replica of an older release would leave it.
	var version int64
	if err := a.Store.Pool().QueryRow(t.Context(), `DELETE FROM goose_db_version
		WHERE version_id = (SELECT max(version_id) FROM goose_db_version) RETURNING version_id`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	code, r := readyz(t, base)
	if code != 503 || r.Ready || r.Checks["migrations"] != "migrations pending" || r.Checks["database"] != "ok" || r.Checks["broker"] != "ok" {
		t.Errorf("with migration %d pending: %d %+v", version, code, r)
	}
	if _, err := a.Store.Pool().Exec(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, version); err != nil {
		t.Fatal(err)
	}
	if code, r := readyz(t, base); code != 200 || !maps.Equal(r.Checks, allOK) {
		t.Errorf("with the migration back: %d %+v", code, r)
	}

	e.closeBroker()
	code, r = readyz(t, base)
	if code != 503 || r.Ready || r.Checks["broker"] == "ok" || r.Checks["broker"] == "" || r.Checks["database"] != "ok" {
		t.Errorf("with the broker gone: %d %+v", code, r)
	}
}

package app_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/app"
	"github.com/crescendo-hq/crescendo/broker"
	"github.com/crescendo-hq/crescendo/config"
	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

const (
	partnerID  = "streamly"
	partnerKey = "pk_test_0123456789abcdef"
	twilioFrom = "+15005550006"
	emailFrom  = "offers@crescendo.example"
	topic      = "fan-activity"
	dlqTopic   = "fan-activity.dlq"
	partitions = 4
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var signingKey = []byte("0123456789abcdef0123456789abcdef")

type env struct {
	t        *testing.T
	brokers  []string
	dbURL    string
	sb       *demo.Sandboxes
	settings config.Settings
	logger   *slog.Logger // nil: logs are discarded
	broker   *broker.Broker
}

// closeBroker stops the broker before the test ends.
func (e *env) closeBroker() { e.broker.Close() }

func newEnv(t *testing.T) *env {
	t.Helper()
	b, err := broker.Start(t.Context(), broker.Config{
		Addr:   "127.0.0.1:0",
		Topics: []broker.TopicSpec{{Name: topic, Partitions: partitions}, {Name: dlqTopic, Partitions: 1}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sb, err := demo.StartSandboxes()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	e := &env{t: t, brokers: b.Addrs(), dbURL: pgtemp.New(t), sb: sb, broker: b}
	e.settings = config.Settings{
		KafkaBrokers: e.brokers, Topic: topic, DLQTopic: dlqTopic, GroupID: "crescendo-test", Partitions: partitions,
		DatabaseURL: e.dbURL, HTTPAddr: "127.0.0.1:0",
		TwilioSID: sb.TwilioSID, TwilioToken: sb.TwilioToken, TwilioFrom: twilioFrom, TwilioBaseURL: sb.TwilioURL,
		SendGridKey: sb.SendGridKey, SendGridFrom: emailFrom, SendGridBaseURL: sb.SendGridURL,
		SigningKeyID: "k1", SigningKeys: map[string][]byte{"k1": signingKey},
		LinkBase: "https://crescendo.test/o/", DeliveryWorkers: 8,
		SessionGap: 30 * time.Minute, BatchLinger: 5 * time.Millisecond, ExpirySchedule: "@every 1h",
		RefreshInterval: time.Hour, ShutdownTimeout: 20 * time.Second,
	}
	return e
}

type fan struct {
	id           uuid.UUID
	user         string
	phone, email string
}

func (e *env) start(seed func(ctx context.Context, st *store.Store) error) *app.App {
	e.t.Helper()
	a, err := app.Start(e.t.Context(), e.settings, app.Options{
		Logger:        cmp.Or(e.logger, slog.New(slog.DiscardHandler)),
		BeforeConsume: seed,
		Outbox:        func() any { return e.sb.Outbox() },
		// Short group timings so a restarted member gets its partitions quickly.
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// fanZone is the seeded fans' time zone: one where it is about 14:00 when
// the tests run, so texts fall inside the hours they may be sent in (08:00
// to 21:00 in the fan's zone) whatever the time of day in UTC.
var fanZone = zoneAtTwoPM(time.Now())

func seedCatalog(ctx context.Context, st *store.Store, fans []fan) error {
	if err := st.PutPartner(ctx, store.Partner{ID: partnerID, Name: "Streamly", APIKey: partnerKey}); err != nil {
		return err
	}
	if err := st.PutPerformer(ctx, "aurora", "Aurora Lane"); err != nil {
		return err
	}
	if err := st.PutShow(ctx, store.Show{ID: "roundhouse", PerformerID: "aurora", Name: "Live at the Roundhouse",
		StartsAt: time.Date(2027, 3, 1, 20, 0, 0, 0, time.UTC), VenueName: "Roundhouse", VenueLat: 51.54, VenueLon: -0.15}); err != nil {
		return err
	}
	// A point per minute listened, without decay: index values read as minutes.
	prof := scoring.DefaultProfile()
	prof.ID, prof.StreamMode, prof.StreamThresholdMinutes, prof.StreamCap, prof.HalfLife = "minutes", scoring.StreamCount, 1, 255, 0
	if err := st.PutProfile(ctx, prof); err != nil {
		return err
	}
	if err := st.SetPerformerScoring(ctx, "aurora", store.PerformerScoring{ProfileID: "minutes"}); err != nil {
		return err
	}
	if _, err := st.PutRule(ctx, offers.Rule{ID: "presale", PerformerID: "aurora", ShowID: "roundhouse",
		Tiers:    []offers.Tier{{Threshold: 10, Perks: []string{"presale"}}},
		Channels: []offers.Channel{offers.ChannelPush, offers.ChannelSMS, offers.ChannelEmail}, Lifetime: 48 * time.Hour}); err != nil {
		return err
	}
	for _, f := range fans {
		if err := st.PutFan(ctx, store.Fan{ID: f.id, DisplayName: "Fan " + f.user, Phone: f.phone, Email: f.email, TimeZone: fanZone}); err != nil {
			return err
		}
		if err := st.LinkAccount(ctx, partnerID, f.user, f.id); err != nil {
			return err
		}
	}
	return nil
}

func listen(user, id string, at time.Time, performer string, minutes int) kafka.Message {
	v, err := events.Encode(events.Event{ID: id, Source: partnerID, Subject: user, Type: events.TypeListen, Time: at,
		Listen: &events.Listen{Performer: performer, Track: "t", MsPlayed: int64(minutes) * 60_000, Device: "mobile", Country: "GB"}})
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(user), Value: v}
}

func (e *env) publish(msgs ...kafka.Message) {
	e.t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(e.brokers...), Topic: topic, Balancer: kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000, Transport: tr}
	defer w.Close()
	if err := w.WriteMessages(e.t.Context(), msgs...); err != nil {
		e.t.Fatal(err)
	}
}

// eventually polls cond until it holds; it fails the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

type sse struct{ id, event, data string }

// openStream holds a push stream open as a partner app does, with a stream
// token its backend got with the partner's key, and sends each SSE message
// on the channel.
func openStream(t *testing.T, base, key, user string) <-chan sse {
	t.Helper()
	status, body := call(t, http.MethodPost, base+"/v1/push/stream-tokens", key, map[string]any{"user_id": user})
	token, _ := body["token"].(string)
	if status != http.StatusCreated || token == "" {
		t.Fatalf("stream token for %s: %d %v", user, status, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/push/stream?token="+url.QueryEscape(token), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("push stream: status %d", resp.StatusCode)
	}
	out := make(chan sse, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					out <- cur
				}
				cur = sse{}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

func TestEndToEndOfferIsIssuedOnceAndDeliveredOnEachChannel(t *testing.T) {
	e := newEnv(t)
	fans := []fan{
		{id: uuid.New(), user: "u-push", phone: "+14155550101"},
		{id: uuid.New(), user: "u-sms", phone: "+14155550102"},
		{id: uuid.New(), user: "u-email", email: "fan@example.com"},
	}
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, fans) })
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	// Authentication of the push stream: no key, a wrong key, and another partner's user are refused.
	for _, tc := range []struct {
		key, user string
		want      int
	}{{"", "u-push", 401}, {"wrong", "u-push", 401}, {partnerKey, "nobody", 404}} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/push/stream?user_id="+tc.user, nil)
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("push stream with key %q user %q: status %d, want %d", tc.key, tc.user, resp.StatusCode, tc.want)
		}
	}

	stream := openStream(t, base, partnerKey, "u-push")
	eventually(t, 5*time.Second, "the push stream to register", func() bool { return a.Push.Online(fans[0].id) })

	now := time.Now().UTC().Truncate(time.Second)
	var msgs []kafka.Message
	for i := range 4 { // 4 × 3 minutes: the threshold of 10 is crossed on the 4th listen
		for _, f := range fans {
			msgs = append(msgs, listen(f.user, fmt.Sprintf("%s-%d", f.user, i), now.Add(time.Duration(i)*time.Minute), "aurora", 3))
		}
	}
	msgs = append(msgs,
		kafka.Message{Key: []byte("u-sms"), Value: []byte("this is not json")},
		func() kafka.Message {
			m := listen("u-sms", "x-1", now, "aurora", 3)
			m.Value = []byte(strings.Replace(string(m.Value), `"source":"streamly"`, `"source":"impostor"`, 1))
			return m
		}(),
		listen("stranger", "s-1", now, "aurora", 30), // unlinked account: dropped, not dead-lettered
	)
	e.publish(msgs...)

	eventually(t, 30*time.Second, "three delivered offers", func() bool {
		sum, err := a.Store.SummarizeOffers(t.Context())
		return err == nil && sum.ByStatus[store.OfferDelivered] == 3
	})
	stored, err := a.Store.Offers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byFan := map[uuid.UUID]store.StoredOffer{}
	for _, o := range stored {
		byFan[o.FanID] = o
	}
	wantChannel := map[uuid.UUID]string{fans[0].id: "push", fans[1].id: "sms", fans[2].id: "email"}
	for id, ch := range wantChannel {
		o, ok := byFan[id]
		if !ok {
			t.Fatalf("no offer for fan %s", id)
		}
		if o.Channel != ch || o.Tier != 1 || o.RuleID != "presale" || o.RuleVersion != 1 || o.IndexValue != 12 {
			t.Errorf("offer for %s: channel %q tier %d rule %s v%d index %v; want %s, 1, presale v1, 12", id, o.Channel, o.Tier, o.RuleID, o.RuleVersion, o.IndexValue, ch)
		}
		if d := o.ExpiresAt.Sub(o.IssuedAt); d != 48*time.Hour {
			t.Errorf("offer lifetime %s, want 48h", d)
		}
		if !strings.HasSuffix(o.EventID, "-3") {
			t.Errorf("offer caused by %q, want the fourth listen", o.EventID)
		}
	}
	if len(stored) != 3 {
		t.Fatalf("%d offers stored, want 3", len(stored))
	}

	// Twilio received exactly the documented form fields.
	tw := e.sb.Twilio.Messages()
	if len(tw) != 1 {
		t.Fatalf("Twilio sandbox received %d messages, want 1", len(tw))
	}
	form := tw[0].Form
	if got := slices.Sorted(maps.Keys(form)); !slices.Equal(got, []string{"Body", "From", "StatusCallback", "To", "ValidityPeriod"}) {
		t.Errorf("Twilio form fields %v", got)
	}
	if cb := form.Get("StatusCallback"); cb != "http://"+a.HTTPAddr+"/v1/webhooks/twilio/status" && !strings.HasSuffix(cb, "/v1/webhooks/twilio/status") {
		t.Errorf("Twilio StatusCallback %q", cb)
	}
	if form.Get("To") != "+14155550102" || form.Get("From") != twilioFrom || form.Get("ValidityPeriod") != "36000" {
		t.Errorf("Twilio form: To=%q From=%q ValidityPeriod=%q", form.Get("To"), form.Get("From"), form.Get("ValidityPeriod"))
	}
	checkToken(t, a, form.Get("Body"), byFan[fans[1].id].ID)

	// SendGrid received one v3 mail body for the email fan, carrying the offer id.
	sg := e.sb.SendGrid.Messages()
	if len(sg) != 1 {
		t.Fatalf("SendGrid sandbox received %d messages, want 1", len(sg))
	}
	var body struct {
		Personalizations []struct {
			To         []struct{ Email, Name string } `json:"to"`
			CustomArgs map[string]string              `json:"custom_args"`
		} `json:"personalizations"`
		From    struct{ Email string } `json:"from"`
		Subject string                 `json:"subject"`
		Content []struct{ Type, Value string }
	}
	if err := json.Unmarshal(sg[0].Raw, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Personalizations) != 1 || len(body.Personalizations[0].To) != 1 || body.Personalizations[0].To[0].Email != "fan@example.com" {
		t.Errorf("SendGrid personalizations: %+v", body.Personalizations)
	}
	if body.From.Email != emailFrom || body.Subject == "" {
		t.Errorf("SendGrid from %q subject %q", body.From.Email, body.Subject)
	}
	if len(body.Content) != 2 || body.Content[0].Type != "text/plain" || body.Content[1].Type != "text/html" {
		t.Errorf("SendGrid content: %+v", body.Content)
	}
	if got := body.Personalizations[0].CustomArgs["offer_id"]; got != byFan[fans[2].id].ID.String() {
		t.Errorf("SendGrid custom_args offer_id %q, want %s", got, byFan[fans[2].id].ID)
	}
	checkToken(t, a, body.Content[0].Value, byFan[fans[2].id].ID)

	// The in-app fan got the offer over the push stream.
	select {
	case m := <-stream:
		var data struct {
			OfferID string `json:"offer_id"`
			Link    string `json:"link"`
		}
		if err := json.Unmarshal([]byte(m.data), &data); err != nil {
			t.Fatalf("push data %q: %v", m.data, err)
		}
		want := byFan[fans[0].id].ID.String()
		// The SSE id is the push's sequence number, what a reconnecting app resumes from.
		if _, err := strconv.ParseInt(m.id, 10, 64); m.event != "offer" || err != nil || data.OfferID != want {
			t.Errorf("push message %+v, want offer %s", m, want)
		}
		checkToken(t, a, data.Link, byFan[fans[0].id].ID)
	case <-time.After(10 * time.Second):
		t.Fatal("no push message")
	}

	// The outbox shows what the sandboxes received; readiness reports every check.
	var outbox demo.Outbox
	getJSON(t, base+"/dev/outbox", http.StatusOK, &outbox)
	if len(outbox.SMS) != 1 || outbox.SMS[0].To != "+14155550102" || len(outbox.Email) != 1 || outbox.Email[0].CustomArgs["offer_id"] == "" {
		t.Errorf("outbox %+v", outbox)
	}
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	getJSON(t, base+"/readyz", http.StatusOK, &ready)
	if !ready.Ready || len(ready.Checks) != 4 || ready.Checks["partitions"] != "ok" || ready.Checks["migrations"] != "ok" {
		t.Errorf("readyz %+v", ready)
	}

	// Bad events went to the DLQ with their reason; the unlinked one was only counted.
	dlq := readAll(t, e.brokers, dlqTopic, 0, 2)
	reasons := []string{header(dlq[0], "dlq_reason"), header(dlq[1], "dlq_reason")}
	slices.Sort(reasons)
	if !slices.Equal(reasons, []string{"malformed", "unknown_partner"}) {
		t.Errorf("DLQ reasons %v", reasons)
	}
	// Read counts a record before it is processed, and dead letters count once
	// written: wait until every record has its outcome.
	eventually(t, 10*time.Second, "every event's outcome counted", func() bool {
		st := a.Consumer.Stats()
		return st.Applied+st.Dropped+st.DeadLettered == int64(len(msgs))
	})
	st := a.Consumer.Stats()
	if st.DeadLettered != 2 || st.Dropped != 1 || st.Applied != 12 || st.OffersIssued != 3 {
		t.Errorf("stats %+v; want 2 dead-lettered, 1 dropped, 12 applied, 3 offers", st)
	}
}

var tokenRe = regexp.MustCompile(`https://crescendo\.test/o/([A-Za-z0-9._-]+)`)

func checkToken(t *testing.T, a *app.App, text string, want uuid.UUID) {
	t.Helper()
	m := tokenRe.FindStringSubmatch(text)
	if m == nil {
		t.Errorf("no offer link in %q", text)
		return
	}
	id, _, err := a.Signer.Verify(m[1])
	if err != nil || id != want {
		t.Errorf("token names offer %s (%v), want %s", id, err, want)
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// readAll reads n records from one partition.
func readAll(t *testing.T, brokers []string, topic string, partition, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s/%d after %d records: %v", topic, partition, len(out), err)
		}
		out = append(out, m)
	}
	return out
}

func lastOffsets(t *testing.T, brokers []string) map[int]int64 {
	t.Helper()
	out := map[int]int64{}
	for p := range partitions {
		conn, err := kafka.DialLeader(t.Context(), "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[p] = last
	}
	return out
}

const total = 3000

func TestRestartMidStreamLosesNothingAndDuplicatesNothing(t *testing.T) {
	e := newEnv(t)
	const nFans = 60
	var fans []fan
	for i := range nFans {
		fans = append(fans, fan{id: uuid.New(), user: fmt.Sprintf("u%03d", i), email: fmt.Sprintf("f%03d@example.com", i)})
	}
	seed := func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, fans) }
	now := time.Now().UTC().Truncate(time.Second)
	batch := func(from, to int) []kafka.Message {
		var msgs []kafka.Message
		for i := from; i < to; i++ {
			f := fans[(i*7)%nFans]
			at := now.Add(time.Duration(i-total) * time.Second)
			msgs = append(msgs, listen(f.user, fmt.Sprintf("e%05d", i), at, "aurora", 1+i%3))
		}
		return msgs
	}
	e.publish(batch(0, total/3)...)

	first := e.start(seed)
	eventually(t, 30*time.Second, "the first member to checkpoint part of the stream", func() bool {
		return first.Consumer.Stats().Checkpoints >= 2 && first.Consumer.Stats().Read >= 200
	})
	e.publish(batch(total/3, 2*total/3)...)
	first.Shutdown(context.Background()) // while it may still be reading the second third
	read := first.Consumer.Stats().Read
	if read >= total {
		t.Fatalf("first member read %d records; the rest were not published yet", read)
	}
	e.publish(batch(2*total/3, total)...)

	second := e.start(seed)
	defer second.Shutdown(context.Background())
	want := lastOffsets(t, e.brokers)
	eventually(t, 60*time.Second, "the second member to reach the end of every partition", func() bool {
		for p, last := range want {
			_, next, err := second.Store.LoadPartition(t.Context(), store.PartitionID{Group: "crescendo-test", Topic: topic, Partition: p})
			if err != nil || next != last {
				return false
			}
		}
		return true
	})

	// The reference: the same records, each processed once, in a straight line.
	dir, rules, scorers := second.Directory, second.Rules, second.Scorers
	refPairs := map[pipeline.PairKey]scoring.PairState{}
	refOffers := map[offers.Key]bool{}
	decoder, _ := events.NewDecoder(events.DecoderConfig{})
	for p, last := range want {
		part, err := pipeline.New(pipeline.Config{Directory: dir, Rules: rules, Scorers: scorers})
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		for _, m := range readAll(t, e.brokers, topic, p, int(last)) {
			ev, err := decoder.Decode(m.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := part.Apply(ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range res.Offers {
				refOffers[o.Key()] = true
			}
		}
		maps.Copy(refPairs, part.State().Pairs)
	}

	gotPairs := map[pipeline.PairKey]scoring.PairState{}
	for p := range partitions {
		st, _, err := second.Store.LoadPartition(t.Context(), store.PartitionID{Group: "crescendo-test", Topic: topic, Partition: p})
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(gotPairs, st.Pairs)
	}
	if len(gotPairs) != len(refPairs) {
		t.Fatalf("%d pairs stored, reference has %d", len(gotPairs), len(refPairs))
	}
	for k, want := range refPairs {
		if got := gotPairs[k]; got != want {
			t.Errorf("index state for %v = %+v, reference %+v (an event was lost or counted twice)", k, got, want)
		}
	}
	stored, err := second.Store.Offers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gotOffers := map[offers.Key]bool{}
	for _, o := range stored {
		if gotOffers[o.Key()] {
			t.Errorf("duplicate offer %v", o.Key())
		}
		gotOffers[o.Key()] = true
	}
	if len(refOffers) == 0 {
		t.Fatal("reference issued no offers; the test proves nothing")
	}
	if !maps.Equal(gotOffers, refOffers) {
		t.Errorf("offers %d, reference %d", len(gotOffers), len(refOffers))
	}

	// Kafka's copy of the offsets, for lag tools, catches up with Postgres.
	eventually(t, 30*time.Second, "the group's offsets in Kafka to reach the end of every partition", func() bool {
		return maps.Equal(kafkaCommitted(t, e.brokers, "crescendo-test"), want)
	})
}

// kafkaCommitted returns the offsets the group committed to Kafka.
func kafkaCommitted(t *testing.T, brokers []string, group string) map[int]int64 {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	parts := make([]int, partitions)
	for p := range parts {
		parts[p] = p
	}
	resp, err := cl.OffsetFetch(t.Context(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

func TestTwoMembersShareThePartitions(t *testing.T) {
	e := newEnv(t)
	var fans []fan
	for i := range 20 {
		fans = append(fans, fan{id: uuid.New(), user: fmt.Sprintf("m%02d", i), email: fmt.Sprintf("m%02d@example.com", i)})
	}
	seed := func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, fans) }
	a := e.start(seed)
	b := e.start(seed)
	defer a.Shutdown(context.Background())
	eventually(t, 30*time.Second, "both members to own disjoint partitions covering the topic", func() bool {
		pa, pb := a.Consumer.Assigned(), b.Consumer.Assigned()
		all := slices.Sorted(slices.Values(append(slices.Clone(pa), pb...)))
		return len(pa) > 0 && len(pb) > 0 && slices.Equal(all, []int{0, 1, 2, 3})
	})

	now := time.Now().UTC().Add(-time.Hour)
	var msgs []kafka.Message
	for i := range 4 {
		for _, f := range fans {
			msgs = append(msgs, listen(f.user, fmt.Sprintf("%s-%d", f.user, i), now.Add(time.Duration(i)*time.Minute), "aurora", 3))
		}
	}
	e.publish(msgs...)
	eventually(t, 30*time.Second, "every event read by one member or the other", func() bool {
		return a.Consumer.Stats().Read+b.Consumer.Stats().Read == int64(len(msgs))
	})
	if a.Consumer.Stats().Read == 0 || b.Consumer.Stats().Read == 0 {
		t.Errorf("one member read nothing: %d and %d", a.Consumer.Stats().Read, b.Consumer.Stats().Read)
	}
	eventually(t, 30*time.Second, "one offer per fan", func() bool {
		o, err := a.Store.Offers(t.Context())
		return err == nil && len(o) == len(fans)
	})

	b.Shutdown(context.Background())
	eventually(t, 30*time.Second, "the remaining member to take every partition", func() bool {
		return slices.Equal(a.Consumer.Assigned(), []int{0, 1, 2, 3})
	})
	// Events published after the hand-over still count, once.
	e.publish(listen(fans[0].user, "late", now.Add(10*time.Minute), "aurora", 50))
	eventually(t, 30*time.Second, "the late event", func() bool {
		return a.Consumer.Stats().Read+b.Consumer.Stats().Read == int64(len(msgs))+1
	})
	o, err := a.Store.Offers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(o) != len(fans) {
		t.Errorf("%d offers after the hand-over, want %d", len(o), len(fans))
	}
}

func getJSON(t *testing.T, url string, wantStatus int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d", url, resp.StatusCode, wantStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

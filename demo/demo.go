// Package demo runs Crescendo end to end on one machine: the embedded broker,
// provider sandboxes, seeded performers, shows, rules and fans, and a simulated
// partner app that streams listening activity through Kafka and holds in-app
// push streams open for some of its users.
package demo

import (
	"bufio"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/app"
	"github.com/crescendo-hq/crescendo/config"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// PartnerID is the demo partner app: a music streaming service.
const PartnerID = "streamly"

// Config configures a demo run.
type Config struct {
	Settings config.Settings
	// Duration stops the demo by itself; 0 runs until ctx ends.
	Duration time.Duration
	// Rate is the simulated partner's events per second; default 200.
	Rate int
	// Fans is how many fans the demo registers; default 120.
	Fans int
	// Out receives the progress lines and summary; default os.Stdout.
	Out    io.Writer
	Logger *slog.Logger
}

// Summary is what a demo run did.
type Summary struct {
	Published     int64
	Read          int64
	DeadLettered  int64
	Dropped       int64
	OffersIssued  int64
	OffersByState map[string]int64
	Delivered     map[string]int64
	PushReceived  int64
	SMSAccepted   int
	EmailAccepted int
}

// Run runs the demo until ctx ends or cfg.Duration passes.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	out := cmp.Or[io.Writer](cfg.Out, os.Stdout)
	logger := cmp.Or(cfg.Logger, slog.Default())
	cfg.Rate = cmp.Or(cfg.Rate, 200)
	cfg.Fans = cmp.Or(cfg.Fans, 120)
	s := cfg.Settings
	s.CreateDatabase = true

	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return Summary{}, fmt.Errorf("creating data dir: %w", err)
	}
	secrets, err := loadSecrets(filepath.Join(s.DataDir, "demo-secrets.json"))
	if err != nil {
		return Summary{}, err
	}
	if len(s.SigningKeys) == 0 {
		s.SigningKeyID = "demo"
		s.SigningKeys = map[string][]byte{"demo": secrets.SigningKey}
	}

	sb, err := StartSandboxes()
	if err != nil {
		return Summary{}, err
	}
	defer sb.Close()
	s.TwilioSID, s.TwilioToken, s.TwilioFrom, s.TwilioBaseURL = sb.TwilioSID, sb.TwilioToken, "+15005550006", sb.TwilioURL
	s.SendGridKey, s.SendGridFrom, s.SendGridBaseURL = sb.SendGridKey, "offers@crescendo.example", sb.SendGridURL

	fans := demoFans(cfg.Fans)
	var consoleToken string
	a, err := app.Start(ctx, s, app.Options{
		Logger: logger,
		Outbox: func() any { return sb.Outbox() },
		BeforeConsume: func(ctx context.Context, st *store.Store) error {
			if err := seed(ctx, st, secrets.PartnerKey, fans); err != nil {
				return err
			}
			var err error
			consoleToken, err = seedConsole(ctx, st)
			return err
		},
	})
	if err != nil {
		return Summary{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			a.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	fmt.Fprintf(out, "crescendo demo: broker %s · http://%s · %d fans · %d events/s\n", strings.Join(a.Brokers, ","), a.HTTPAddr, len(fans), cfg.Rate)
	fmt.Fprintf(out, "  push stream:  curl -N -H \"Authorization: Bearer $(jq -r .partner_key %s)\" 'http://%s/v1/push/stream?user_id=%s'\n",
		filepath.Join(s.DataDir, "demo-secrets.json"), a.HTTPAddr, fans[0].userID)
	fmt.Fprintf(out, "  outbox:       curl http://%s/dev/outbox\n", a.HTTPAddr)
	fmt.Fprintf(out, "  console:      http://%s/console/  (sign in with the marketer token %s)\n", a.HTTPAddr, consoleToken)

	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	var pushReceived atomic.Int64
	var wg sync.WaitGroup
	streamCtx, stopStreams := context.WithCancel(runCtx)
	defer stopStreams()
	for _, f := range fans {
		if !f.inApp {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			holdPushStream(streamCtx, "http://"+a.HTTPAddr, secrets.PartnerKey, f.userID, &pushReceived, logger)
		}()
	}

	var published atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := simulate(runCtx, a.Brokers, s.Topic, fans, cfg.Rate, &published); err != nil && runCtx.Err() == nil {
			logger.Error("simulating partner app", slog.Any("error", err))
		}
	}()

	start := time.Now()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	report := func(prefix string) {
		st := a.Consumer.Stats()
		sum, err := a.Store.SummarizeOffers(context.WithoutCancel(ctx))
		if err != nil {
			logger.Warn("summarizing offers", slog.Any("error", err))
		}
		fmt.Fprintf(out, "%s events published %d · read %d · dead-lettered %d · dropped %d · offers issued %d · delivered push %d sms %d email %d · pending %d\n",
			prefix, published.Load(), st.Read, st.DeadLettered, st.Dropped, st.OffersIssued,
			sum.ByChannel["push"], sum.ByChannel["sms"], sum.ByChannel["email"], sum.ByStatus[store.OfferIssued])
	}
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-tick.C:
			report(fmt.Sprintf("[%4.0fs]", time.Since(start).Seconds()))
		}
	}
	stopStreams()
	wg.Wait()
	// Give the consumer a moment to read what was published before stopping it.
	drain := time.Now().Add(5 * time.Second)
	for a.Consumer.Stats().Read < published.Load() && time.Now().Before(drain) {
		time.Sleep(50 * time.Millisecond)
	}
	a.Shutdown(context.WithoutCancel(ctx))
	stopped = true

	st := a.Consumer.Stats()
	sum := Summary{
		Published: published.Load(), Read: st.Read, DeadLettered: st.DeadLettered, Dropped: st.Dropped,
		OffersIssued: st.OffersIssued, PushReceived: pushReceived.Load(),
		SMSAccepted: len(sb.Twilio.Messages()), EmailAccepted: len(sb.SendGrid.Messages()),
	}
	// The store is closed; count from a fresh connection.
	fin, err := store.Open(context.WithoutCancel(ctx), store.Config{URL: s.DatabaseURL, Logger: logger})
	if err == nil {
		if offSum, err := fin.SummarizeOffers(context.WithoutCancel(ctx)); err == nil {
			sum.OffersByState, sum.Delivered = offSum.ByStatus, offSum.ByChannel
		}
		fin.Close()
	}
	fmt.Fprintf(out, "\nsummary after %s\n", time.Since(start).Round(time.Second))
	fmt.Fprintf(out, "  events:  published %d, read %d, dead-lettered %d, dropped (no linked account) %d\n", sum.Published, sum.Read, sum.DeadLettered, sum.Dropped)
	fmt.Fprintf(out, "  offers:  issued this run %d; all runs by state %v\n", sum.OffersIssued, sum.OffersByState)
	fmt.Fprintf(out, "  delivered (all runs) by channel %v\n", sum.Delivered)
	fmt.Fprintf(out, "  this run the sandboxes accepted %d SMS and %d emails; push streams received %d offers\n", sum.SMSAccepted, sum.EmailAccepted, sum.PushReceived)
	return sum, nil
}

type secrets struct {
	PartnerKey string `json:"partner_key"`
	SigningKey []byte `json:"signing_key"`
}

// loadSecrets reads the demo's generated credentials, creating them on the first
// run, so a second run on the same data dir keeps working with the first's tokens.
func loadSecrets(path string) (secrets, error) {
	var s secrets
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("reading %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	key := make([]byte, 32)
	_, _ = crand.Read(key)
	s = secrets{PartnerKey: "pk_demo_" + base64.RawURLEncoding.EncodeToString(key[:18]), SigningKey: make([]byte, 32)}
	_, _ = crand.Read(s.SigningKey)
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return s, fmt.Errorf("writing %s: %w", path, err)
	}
	return s, nil
}

type demoFan struct {
	id     uuid.UUID
	userID string
	name   string
	phone  string
	email  string
	inApp  bool
}

var fanNamespace = uuid.MustParse("6f1c8a40-3f4e-4c8e-9a57-2f0a5b7c9d11")

var firstNames = []string{"Ada", "Bea", "Cal", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lia"}

func demoFans(n int) []demoFan {
	fans := make([]demoFan, n)
	for i := range fans {
		f := demoFan{
			id:     uuid.NewSHA1(fanNamespace, fmt.Appendf(nil, "demo-fan-%d", i)),
			userID: fmt.Sprintf("u%04d", i),
			name:   fmt.Sprintf("%s %c.", firstNames[i%len(firstNames)], 'A'+rune(i%26)),
			inApp:  i%4 == 0,
		}
		// A third reachable by phone and email, a third by email only, a third by phone only.
		if i%3 != 1 {
			f.phone = fmt.Sprintf("+1415555%04d", i)
		}
		if i%3 != 2 {
			f.email = fmt.Sprintf("fan%04d@example.com", i)
		}
		fans[i] = f
	}
	return fans
}

// Performers of the demo; only the first has a rule.
var performers = []struct{ id, name string }{
	{"aurora-lane", "Aurora Lane"}, {"the-quiet-hours", "The Quiet Hours"}, {"mx-tempo", "MX Tempo"},
}

func seed(ctx context.Context, st *store.Store, partnerKey string, fans []demoFan) error {
	if err := st.PutPartner(ctx, store.Partner{ID: PartnerID, Name: "Streamly", APIKey: partnerKey}); err != nil {
		return err
	}
	for _, p := range performers {
		if err := st.PutPerformer(ctx, p.id, p.name); err != nil {
			return err
		}
	}
	show := store.Show{
		ID: "aurora-lane-roundhouse", PerformerID: "aurora-lane", Name: "Aurora Lane, live at the Roundhouse",
		StartsAt: time.Now().Add(60 * 24 * time.Hour).Truncate(24 * time.Hour), VenueName: "Roundhouse, London",
		VenueLat: 51.5432, VenueLon: -0.1519,
	}
	if err := st.PutShow(ctx, show); err != nil {
		return err
	}
	// The demo's profile gives a streaming point per 3 minutes of listening, so
	// that fans cross thresholds within a demo's seconds.
	prof := scoring.DefaultProfile()
	prof.ID, prof.StreamMode, prof.StreamThresholdMinutes, prof.StreamCap = "demo", scoring.StreamCount, 3, 255
	if err := st.PutProfile(ctx, prof); err != nil {
		return err
	}
	if err := st.SetPerformerScoring(ctx, "aurora-lane", store.PerformerScoring{Aliases: []string{"Aurora", "#AuroraLaneLive"}, ProfileID: "demo"}); err != nil {
		return err
	}
	rule := offers.Rule{
		ID: "aurora-presale", PerformerID: "aurora-lane", ShowID: show.ID,
		Tiers: []offers.Tier{
			{Threshold: 5, Perks: []string{"presale"}},
			{Threshold: 15, Perks: []string{"presale", "vip_upgrade"}},
		},
		Channels: []offers.Channel{offers.ChannelPush, offers.ChannelSMS, offers.ChannelEmail},
		Lifetime: 48 * time.Hour,
	}
	if _, err := st.PutRule(ctx, rule); err != nil {
		return err
	}
	for _, f := range fans {
		if err := st.PutFan(ctx, store.Fan{ID: f.id, DisplayName: f.name, Phone: f.phone, Email: f.email, TimeZone: "Europe/London"}); err != nil {
			return err
		}
		if err := st.LinkAccount(ctx, PartnerID, f.userID, f.id); err != nil {
			return err
		}
	}
	return nil
}

// DemoOrg is the demo's marketer organization, which owns the demo's performers.
const DemoOrg = "demo-records"

// seedConsole makes the demo's organization the owner of its performers and
// returns a fresh marketer token for the console (tokens are only ever
// shown when made, so each run makes one).
func seedConsole(ctx context.Context, st *store.Store) (string, error) {
	if _, err := st.CreateOrganization(ctx, DemoOrg, "Demo Records"); err != nil && !errors.Is(err, store.ErrExists) {
		return "", err
	}
	for _, p := range performers {
		if err := st.AssignPerformer(ctx, DemoOrg, p.id); err != nil {
			return "", err
		}
	}
	_, token, err := st.CreateToken(ctx, DemoOrg, store.RoleMarketer, "demo console "+time.Now().UTC().Format(time.RFC3339))
	return token, err
}

// simulate publishes listening events at rate per second until ctx ends; a few
// come from users who never linked an account and a few are malformed, as in life.
func simulate(ctx context.Context, brokers []string, topic string, fans []demoFan, rate int, published *atomic.Int64) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		Transport:    &kafka.Transport{},
	}
	defer func() {
		_ = w.Close()
		w.Transport.(*kafka.Transport).CloseIdleConnections()
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	perTick := max(rate/10, 1)
	seq := time.Now().UnixNano()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		msgs := make([]kafka.Message, 0, perTick)
		for range perTick {
			seq++
			user := fans[rand.IntN(len(fans))].userID
			switch r := rand.IntN(100); {
			case r < 2:
				user = fmt.Sprintf("stranger%03d", rand.IntN(1000))
			case r < 3:
				msgs = append(msgs, kafka.Message{Key: []byte(user), Value: []byte(`{"specversion":"1.0","id":"broken`)})
				continue
			}
			perf := performers[0].id
			if rand.IntN(10) >= 7 {
				perf = performers[1+rand.IntN(len(performers)-1)].id
			}
			ev := events.Event{
				ID: fmt.Sprintf("ev-%d", seq), Source: PartnerID, Subject: user, Type: events.TypeListen, Time: time.Now().UTC(),
				Listen: &events.Listen{Performer: perf, Track: fmt.Sprintf("track-%d", rand.IntN(40)),
					MsPlayed: int64(150_000 + rand.IntN(90_000)), Device: "mobile", Country: "GB"},
			}
			value, err := events.Encode(ev)
			if err != nil {
				return fmt.Errorf("encoding event: %w", err)
			}
			msgs = append(msgs, kafka.Message{Key: []byte(user), Value: value,
				Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/cloudevents+json")}}})
		}
		// The write is not cancelled with the run: a batch cut short would be
		// partly on the topic yet missing from the published count.
		if err := w.WriteMessages(context.WithoutCancel(ctx), msgs...); err != nil {
			return fmt.Errorf("publishing events: %w", err)
		}
		published.Add(int64(len(msgs)))
	}
}

// holdPushStream is the partner app's side of the in-app channel: it holds the
// stream open for a signed-in user and counts the offers that arrive.
func holdPushStream(ctx context.Context, base, key, userID string, received *atomic.Int64, logger *slog.Logger) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/push/stream?user_id="+userID, nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			logger.Warn("opening push stream", slog.Any("error", err))
		}
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		logger.Warn("opening push stream", slog.Int("status", resp.StatusCode))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: offer") {
			received.Add(1)
		}
	}
}

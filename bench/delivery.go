package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers"
	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// DeliveryConfig configures a delivery run: a backlog drained as fast as the
// dispatcher goes, then offers issued at a steady rate to measure how long
// each takes from issue to the provider.
type DeliveryConfig struct {
	Backlog int // offers queued before the dispatcher starts; default 10,000
	Rate    int // offers issued per second in the steady phase; default 1,000
	Seconds int // length of the steady phase; default 5
	Workers int // deliveries in flight; default 128
	// AdminURL names the Postgres server; the run creates its own database there and drops it.
	AdminURL string
	Out      io.Writer
	// CPUProfile, when set, receives a CPU profile of the backlog drain only.
	CPUProfile io.Writer
}

// DeliveryResult is what a delivery run measured.
type DeliveryResult struct {
	Backlog   int
	DrainTime time.Duration
	DrainRate float64 // deliveries/s
	Steady    int
	Rate      int
	P50, P99  time.Duration // issue to provider acceptance, steady phase
}

// RunDelivery performs one delivery run against the provider sandboxes on loopback.
func RunDelivery(ctx context.Context, cfg DeliveryConfig) (DeliveryResult, error) {
	cfg.Backlog = cmp.Or(cfg.Backlog, 10_000)
	cfg.Rate = cmp.Or(cfg.Rate, 1_000)
	cfg.Seconds = cmp.Or(cfg.Seconds, 5)
	cfg.Workers = cmp.Or(cfg.Workers, 128)
	cfg.AdminURL = cmp.Or(cfg.AdminURL, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	out := cmp.Or[io.Writer](cfg.Out, io.Discard)
	res := DeliveryResult{Backlog: cfg.Backlog, Rate: cfg.Rate}
	logger := slog.New(slog.DiscardHandler)

	dbURL, drop, err := pgtemp.Create(ctx, cfg.AdminURL, "crescendo_dbench_")
	if err != nil {
		return res, err
	}
	defer func() { _ = drop() }()
	st, err := store.Open(ctx, store.Config{URL: dbURL, Logger: logger})
	if err != nil {
		return res, err
	}
	defer st.Close()
	sb, err := demo.StartSandboxes()
	if err != nil {
		return res, err
	}
	defer sb.Close()

	steady := cfg.Rate * cfg.Seconds
	fans, err := seedDelivery(ctx, st, cfg.Backlog+steady)
	if err != nil {
		return res, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	signer, err := offers.NewSigner("k", map[string][]byte{"k": key})
	if err != nil {
		return res, err
	}
	hc := notifiers.ProviderClient(10*time.Second, cfg.Workers)
	smsSender, err := sms.New(sms.Config{AccountSID: sb.TwilioSID, AuthToken: sb.TwilioToken, From: "+15005550006", BaseURL: sb.TwilioURL, HTTPClient: hc})
	if err != nil {
		return res, err
	}
	mailSender, err := email.New(email.Config{APIKey: sb.SendGridKey, FromEmail: "offers@crescendo.example", BaseURL: sb.SendGridURL, HTTPClient: hc})
	if err != nil {
		return res, err
	}
	queue, err := notifiers.New(notifiers.Config{Pool: st.Pool()}) // insert-only: queues jobs as checkpoints do
	if err != nil {
		return res, err
	}
	issued := map[uuid.UUID]time.Time{}
	tokens := map[string]uuid.UUID{}
	issue := func(fans []uuid.UUID) error {
		now := time.Now()
		return pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
			jobs := make([]store.DeliveryJob, len(fans))
			ids := make([]uuid.UUID, len(fans))
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"offers"}, []string{"id", "fan_id", "rule_id", "rule_version", "tier",
				"performer_id", "show_id", "perks", "index_value", "event_id", "partition", "issued_at", "expires_at"},
				pgx.CopyFromSlice(len(fans), func(i int) ([]any, error) {
					ids[i] = uuid.New()
					jobs[i] = store.DeliveryJob{OfferID: ids[i]}
					return []any{pgtype.UUID{Bytes: ids[i], Valid: true}, pgtype.UUID{Bytes: fans[i], Valid: true}, "bench", 1, 1,
						"bench-perf", "bench-show", []string{"presale"}, 1.0, "bench/" + ids[i].String(), 0, now, now.Add(time.Hour)}, nil
				}))
			if err != nil {
				return fmt.Errorf("inserting offers: %w", err)
			}
			for _, id := range ids {
				issued[id] = now
				tokens[signer.Token(id, now.Add(time.Hour))] = id
			}
			return queue.EnqueueTx(ctx, tx, jobs)
		})
	}
	delivered := func() (int, error) {
		var n int
		err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM offers WHERE status = 'delivered'`).Scan(&n)
		return n, err
	}
	waitDelivered := func(n int, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		// Wait on the sandboxes' counts first, which cost nothing: counting
		// delivered offers scans the table, and doing it every 20ms took a
		// fifth of a core from the Postgres being measured. An offer is
		// marked delivered right after its provider accepted it.
		for sb.Twilio.Len()+sb.SendGrid.Len() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling two in-process counters, not standing in for a signal
		}
		for {
			got, err := delivered()
			if err != nil || got >= n {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d offers delivered after %s", got, n, timeout)
			}
			time.Sleep(20 * time.Millisecond) // polling the database for a count, not standing in for a signal
		}
	}

	fmt.Fprintf(out, "queueing %d offers\n", cfg.Backlog)
	for batch := range slices.Chunk(fans[:cfg.Backlog], 5_000) {
		if err := issue(batch); err != nil {
			return res, err
		}
	}
	disp, err := notifiers.New(notifiers.Config{Pool: st.Pool(), Store: st, SMS: smsSender, Email: mailSender, Push: push.NewHub(),
		Signer: signer, LinkBase: "https://crescendo.test/o/", Workers: cfg.Workers, RetryBase: time.Second, Logger: logger})
	if err != nil {
		return res, err
	}
	fmt.Fprintln(out, "draining the backlog")
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return res, fmt.Errorf("starting CPU profile: %w", err)
		}
	}
	began := time.Now()
	if err := disp.Start(ctx); err != nil {
		if cfg.CPUProfile != nil {
			pprof.StopCPUProfile()
		}
		return res, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = disp.Stop(sctx)
	}()
	err = waitDelivered(cfg.Backlog, 5*time.Minute)
	res.DrainTime = time.Since(began)
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return res, err
	}
	res.DrainRate = float64(cfg.Backlog) / res.DrainTime.Seconds()

	fmt.Fprintf(out, "issuing %d offers/s for %ds\n", cfg.Rate, cfg.Seconds)
	rest := fans[cfg.Backlog:]
	// Offers reach the outbox with the consumer's checkpoints, which commit
	// every BatchLinger (20ms) under load: issue them in 20ms batches.
	tick := time.NewTicker(20 * time.Millisecond)
	per := max(cfg.Rate/50, 1)
	for len(rest) > 0 {
		<-tick.C
		n := min(per, len(rest))
		if err := issue(rest[:n]); err != nil {
			tick.Stop()
			return res, err
		}
		rest = rest[n:]
	}
	tick.Stop()
	if err := waitDelivered(cfg.Backlog+steady, 2*time.Minute); err != nil {
		return res, err
	}
	res.Steady = steady

	// Issue to acceptance, from the sandboxes' own acceptance times.
	var lat []time.Duration
	steadyFrom := began.Add(res.DrainTime)
	record := func(id uuid.UUID, at time.Time) {
		if t, ok := issued[id]; ok && t.After(steadyFrom) {
			lat = append(lat, at.Sub(t))
		}
	}
	token := regexp.MustCompile(`/o/([^ ]+)`)
	for _, m := range sb.Twilio.Messages() {
		if k := token.FindStringSubmatch(m.Body); k != nil {
			record(tokens[k[1]], m.DateCreated)
		}
	}
	offerID := regexp.MustCompile(`"offer_id":"([0-9a-f-]{36})"`)
	for _, m := range sb.SendGrid.Messages() {
		if k := offerID.FindSubmatch(m.Raw); k != nil {
			record(uuid.MustParse(string(k[1])), m.AcceptedAt)
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res, nil
}

// seedDelivery makes n fans, every other one reached by text, the rest by
// email, in a zone where it is mid-afternoon (texts go out 08:00-21:00).
func seedDelivery(ctx context.Context, st *store.Store, n int) ([]uuid.UUID, error) {
	if err := st.PutPartner(ctx, store.Partner{ID: partnerID, Name: "Bench", APIKey: "bench"}); err != nil {
		return nil, err
	}
	if err := st.PutPerformer(ctx, "bench-perf", "Bench"); err != nil {
		return nil, err
	}
	if err := st.PutShow(ctx, store.Show{ID: "bench-show", PerformerID: "bench-perf", Name: "Show", StartsAt: time.Now().Add(90 * 24 * time.Hour),
		VenueName: "Venue", VenueLat: 51.5, VenueLon: -0.1}); err != nil {
		return nil, err
	}
	if _, err := st.PutRule(ctx, offers.Rule{ID: "bench", PerformerID: "bench-perf", ShowID: "bench-show", Lifetime: time.Hour,
		Tiers: []offers.Tier{{Threshold: 1, Perks: []string{"presale"}}}, Channels: []offers.Channel{offers.ChannelSMS, offers.ChannelEmail}}); err != nil {
		return nil, err
	}
	off := (14 - time.Now().UTC().Hour() + 24) % 24 // hours east of UTC where it is 14:00
	if off > 14 {
		off -= 24
	}
	zone := "Etc/GMT"
	if off != 0 {
		zone = fmt.Sprintf("Etc/GMT%+d", -off)
	}
	fans := make([]store.BulkFan, n)
	ids := make([]uuid.UUID, n)
	for i := range fans {
		f := store.Fan{ID: uuid.New(), DisplayName: "Fan", TimeZone: zone}
		if i%2 == 0 {
			f.Phone = fmt.Sprintf("+1415%07d", i)
		} else {
			f.Email = fmt.Sprintf("fan%07d@example.com", i)
		}
		fans[i], ids[i] = store.BulkFan{Fan: f, PartnerUserID: userID(i)}, f.ID
	}
	return ids, st.BulkLoadFans(ctx, partnerID, fans)
}

// Print writes a report of r with the conditions it was measured under.
func (r DeliveryResult) Print(w io.Writer, cfg DeliveryConfig) {
	fmt.Fprintf(w, "\nconditions: Twilio and SendGrid sandboxes on loopback, outbox in local Postgres (River), %d workers, half texts half emails\n",
		cmp.Or(cfg.Workers, 128))
	fmt.Fprintf(w, "backlog:     %d offers delivered in %s: %.0f deliveries/s\n", r.Backlog, r.DrainTime.Round(time.Millisecond), r.DrainRate)
	fmt.Fprintf(w, "steady:      %d offers at %d/s: issue-to-provider p50 %s, p99 %s\n", r.Steady, r.Rate,
		r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
}

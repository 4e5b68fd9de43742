package app_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// Provider rate limits under load (#5, acceptance 2): with far more queued
// deliveries than the limits let through, and more workers than the rates,
// no second carries more sends per channel than the token bucket allows.
// The limits are per process: operators set the provider's limit divided by
// the replicas (README, DELIVERY_SMS_RATE).
func TestProviderRateLimitsHoldUnderLoad(t *testing.T) {
	e := newEnv(t)
	e.settings.SMSRate, e.settings.EmailRate, e.settings.DeliveryWorkers = 10, 20, 32
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, nil) })
	defer a.Shutdown(context.Background())
	ctx := t.Context()
	const texts, emails = 40, 60
	queueOffers(ctx, t, a.Store, "rl-sms", texts, fanZone, []offers.Channel{offers.ChannelSMS}, func(i int) (string, string) {
		return fmt.Sprintf("+1415555%04d", i), ""
	})
	queueOffers(ctx, t, a.Store, "rl-email", emails, fanZone, []offers.Channel{offers.ChannelEmail}, func(i int) (string, string) {
		return "", fmt.Sprintf("rl%d@example.com", i)
	})
	eventually(t, 60*time.Second, "every offer delivered", func() bool {
		sum, err := a.Store.SummarizeOffers(ctx)
		return err == nil && sum.ByStatus[store.OfferDelivered] == texts+emails
	})
	for _, c := range []struct {
		rule string
		rate float64
		n    int
	}{{"rl-sms", 10, texts}, {"rl-email", 20, emails}} {
		rows, err := a.Store.Pool().Query(ctx, `SELECT delivered_at FROM offers WHERE rule_id = $1 ORDER BY delivered_at`, c.rule)
		if err != nil {
			t.Fatal(err)
		}
		var at []time.Time
		for rows.Next() {
			var d time.Time
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			at = append(at, d)
		}
		if rows.Err() != nil || len(at) != c.n {
			t.Fatalf("%s: %d delivery times, %v", c.rule, len(at), rows.Err())
		}
		// A bucket of rate/10 tokens refilled at rate per second lets through
		// at most burst + rate×w in any window w; the slack covers the time
		// between a send being let through and its acceptance being recorded.
		burst, w, slack := max(1, int(c.rate/10)), 2*time.Second, 3
		allowed := burst + int(c.rate*w.Seconds()) + slack
		busiest := 0
		for i := range at {
			j, _ := slices.BinarySearchFunc(at, at[i].Add(w), func(x, target time.Time) int { return x.Compare(target) })
			busiest = max(busiest, j-i)
		}
		if busiest > allowed {
			t.Errorf("%s: %d sends within %s, the limit allows %d", c.rule, busiest, w, allowed)
		}
		if took, least := at[len(at)-1].Sub(at[0]), time.Duration(float64(c.n-burst)/c.rate*float64(time.Second))*8/10; took < least {
			t.Errorf("%s: %d sends took %s, the limit needs at least %s", c.rule, c.n, took, least)
		}
		t.Logf("%s: %d sends in %s, at most %d in any %s (limit %d)", c.rule, c.n, at[len(at)-1].Sub(at[0]).Round(time.Millisecond), busiest, w, allowed)
	}
}

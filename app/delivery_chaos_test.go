package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/sandbox/sendgrid"
	"github.com/crescendo-hq/crescendo/sandbox/twilio"
)

const chaosOffers = 10_000

// zoneAtTwoPM names a fixed-offset zone where it is about 14:00 now, inside
// the hours texts may be sent in, whenever the test runs.
func zoneAtTwoPM(now time.Time) string {
	off := 14 - now.UTC().Hour()
	if off < -12 {
		off += 24
	}
	if off > 14 {
		off -= 24
	}
	if off == 0 {
		return "Etc/GMT"
	}
	return fmt.Sprintf("Etc/GMT%+d", -off) // the Etc zones' signs are inverted
}

// Delivery under provider chaos: 10,000 offers go out through the sandboxes
// while 20% of sends fail transiently and 5% time out after the provider
// accepted the message; the delivering process is SIGKILLed mid-run and
// another takes over. Every offer must end delivered or failed with a
// reason, and no provider may have accepted an offer twice.
func TestDeliveryChaosNoLossNoDuplicates(t *testing.T) {
	r := newCrashRig(t, 0xC0FFEE05)
	ctx := t.Context()
	sb, err := demo.StartSandboxes()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)

	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(0xC0FFEE05, 7))
	never := make(chan struct{}) // a hung answer: the client times out
	t.Cleanup(func() { close(never) })
	draw := func(r *http.Request) (transient, timeout, limited bool) {
		if r.Method != http.MethodPost { // look-ups answer truthfully
			return
		}
		mu.Lock()
		p := rng.Float64()
		mu.Unlock()
		return p < 0.15, p >= 0.20 && p < 0.25, p >= 0.15 && p < 0.20
	}
	sb.Twilio.SetFault(func(r *http.Request) twilio.Fault {
		switch transient, timeout, limited := draw(r); {
		case transient:
			return twilio.Fault{Status: http.StatusServiceUnavailable}
		case limited:
			return twilio.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second}
		case timeout:
			return twilio.Fault{Store: true, Hang: never}
		}
		return twilio.Fault{}
	})
	sb.SendGrid.SetFault(func(r *http.Request) sendgrid.Fault {
		switch transient, timeout, limited := draw(r); {
		case transient:
			return sendgrid.Fault{Status: http.StatusBadGateway}
		case limited:
			return sendgrid.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second}
		case timeout:
			return sendgrid.Fault{Store: true, Hang: never}
		}
		return sendgrid.Fault{}
	})

	// Offers half to phones, half to addresses, queued as the consumer would.
	now := time.Now().UTC()
	zone := zoneAtTwoPM(now)
	queueOffers(ctx, t, r.st, "chaos", chaosOffers, zone, []offers.Channel{offers.ChannelSMS, offers.ChannelEmail}, func(i int) (string, string) {
		if i%2 == 0 {
			return fmt.Sprintf("+1415%07d", i), ""
		}
		return "", fmt.Sprintf("fan%05d@example.com", i)
	})

	r.env = append(r.env,
		"TWILIO_ACCOUNT_SID="+sb.TwilioSID, "TWILIO_AUTH_TOKEN="+sb.TwilioToken, "TWILIO_FROM="+twilioFrom, "TWILIO_BASE_URL="+sb.TwilioURL,
		"SENDGRID_API_KEY="+sb.SendGridKey, "SENDGRID_FROM="+emailFrom, "SENDGRID_BASE_URL="+sb.SendGridURL,
		"OFFER_LINK_BASE=https://crescendo.test/o/",
		"DELIVERY_WORKERS=32", "DELIVERY_SMS_RATE=0", "DELIVERY_EMAIL_RATE=0",
		"DELIVERY_RETRY_BASE=50ms", "DELIVERY_RESCUE_AFTER=3s", "PROVIDER_TIMEOUT=300ms",
		"LOG_LEVEL=error",
	)
	final := func() int {
		var n int
		if err := r.st.Pool().QueryRow(ctx, `SELECT count(*) FROM offers WHERE rule_id = 'chaos' AND status <> 'issued'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := r.start("deliverer-1")
	eventually(t, 60*time.Second, "a quarter of the offers to be done", func() bool { return final() >= chaosOffers/4 })
	if err := first.kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := final()
	second := r.start("deliverer-2")
	// A loaded CI machine ran this 2-3 times slower than usual and missed a
	// fixed 3-minute deadline while still delivering; a stall as long as the
	// old deadline is what fails, so whatever passed before passes now.
	progressing(t, 3*time.Minute, 6*time.Minute, "every offer to end", chaosOffers, final, func() string {
		return stuckJobs(t, r.st.Pool(), "chaos")
	})
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.done:
	case <-time.After(40 * time.Second):
		t.Fatal("the second deliverer did not stop after SIGTERM")
	}

	var delivered, failed, reasonless int
	if err := r.st.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed'),
			count(*) FILTER (WHERE status = 'failed' AND COALESCE(status_reason, '') = '')
		FROM offers WHERE rule_id = 'chaos'`).Scan(&delivered, &failed, &reasonless); err != nil {
		t.Fatal(err)
	}
	if delivered+failed != chaosOffers || reasonless != 0 {
		t.Fatalf("%d delivered, %d failed (%d without a reason), want %d in all", delivered, failed, reasonless, chaosOffers)
	}
	// No offer accepted twice: texts carry the offer's token, emails its id.
	token := regexp.MustCompile(`/o/([^ ]+)`)
	seen := map[string]int{}
	for _, m := range sb.Twilio.Messages() {
		if k := token.FindStringSubmatch(m.Body); k != nil {
			seen["sms:"+k[1]]++
		}
	}
	for _, m := range sb.SendGrid.Messages() {
		if k := offerIDInMail.FindSubmatch(m.Raw); k != nil {
			seen["email:"+string(k[1])]++
		}
	}
	accepted, twice := 0, 0
	for _, n := range seen {
		accepted++
		if n > 1 {
			twice++
		}
	}
	if twice != 0 {
		t.Fatalf("%d offers accepted twice by a provider", twice)
	}
	if accepted < delivered {
		t.Fatalf("providers accepted %d offers, %d are marked delivered", accepted, delivered)
	}
	t.Logf("%d delivered, %d failed; %d done when the first deliverer was killed; %d accepted by the providers",
		delivered, failed, killedAt, accepted)
}

// stuckJobs describes the delivery jobs of rule's offers that have not
// ended, grouped by state, attempt and last error, for a failure message.
func stuckJobs(t *testing.T, pool *pgxpool.Pool, rule string) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT COALESCE(j.state::text, 'no job'), COALESCE(j.attempt, 0),
			COALESCE(left(j.errors[array_length(j.errors, 1)]->>'error', 160), ''), count(*)
		FROM offers o LEFT JOIN river_job j ON j.args->>'offer_id' = o.id::text
		WHERE o.rule_id = $1 AND o.status = 'issued'
		GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20`, rule)
	if err != nil {
		return "reading the stuck jobs: " + err.Error()
	}
	var b strings.Builder
	for rows.Next() {
		var state, last string
		var attempt, n int
		if err := rows.Scan(&state, &attempt, &last, &n); err != nil {
			return "reading the stuck jobs: " + err.Error()
		}
		fmt.Fprintf(&b, "\n  %d offers: job %s, attempt %d, last error %q", n, state, attempt, last)
	}
	if err := rows.Err(); err != nil {
		return "reading the stuck jobs: " + err.Error()
	}
	return b.String()
}

// progressing waits until count() reaches want. It fails when count has not
// moved for stall, or when limit has passed in all, so a slow but working
// system passes and a stuck one fails within stall; the failure adds what
// describe says of the work left.
func progressing(t *testing.T, stall, limit time.Duration, what string, want int, count func() int, describe func() string) {
	t.Helper()
	start := time.Now()
	last, lastAt := count(), start
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for last != want {
		<-tick.C
		now := time.Now()
		if n := count(); n != last {
			last, lastAt = n, now
			continue
		}
		switch {
		case now.Sub(lastAt) > stall:
			t.Fatalf("no progress for %s waiting for %s: %d of %d%s", stall, what, last, want, describe())
		case now.Sub(start) > limit:
			t.Fatalf("timed out after %s waiting for %s: %d of %d%s", limit, what, last, want, describe())
		}
	}
}

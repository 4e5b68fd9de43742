package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/sandbox/twilio"
	"github.com/crescendo-hq/crescendo/store"
)

// No offer stays "issued" once nothing is left to deliver it. A delivery
// job's last attempt that fails before any send (here the provider look-up
// of an earlier unknown attempt) ends the offer as failed; a job River
// discarded without running it (its process died in the last attempt) is
// ended by the sweep. Neither ends an offer that has moved on to a later
// round: that round's delivery is another job's.
func TestDeliveryGivenUpEndsTheOffer(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, store.Config{URL: pgtemp.New(t), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.PutPartner(ctx, store.Partner{ID: partnerID, Name: "Streamly", APIKey: partnerKey}); err != nil {
		t.Fatal(err)
	}
	sb, err := demo.StartSandboxes()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	// Twilio takes texts but cannot be asked about them.
	sb.Twilio.SetFault(func(r *http.Request) twilio.Fault {
		if r.Method == http.MethodGet {
			return twilio.Fault{Status: http.StatusInternalServerError}
		}
		return twilio.Fault{}
	})
	zone := zoneAtTwoPM(time.Now())
	queueOffers(ctx, t, st, "sweep", 4, zone, []offers.Channel{offers.ChannelSMS}, func(i int) (string, string) {
		return "+1415555010" + string(rune('0'+i)), ""
	})
	rows, err := st.Pool().Query(ctx, `SELECT id FROM offers WHERE rule_id = 'sweep' ORDER BY fan_id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) != 4 {
		t.Fatalf("%d offers (%v), want 4", len(ids), err)
	}
	lastTry, discarded, laterRound, staleLast := ids[0], ids[1], ids[2], ids[3]

	// lastTry and staleLast: an earlier attempt's outcome is unknown and
	// the job is on its last attempt; a receipt has since reopened
	// staleLast for a new round, which the old job must leave alone.
	if err := st.RecordAttempts(ctx, []store.Attempt{
		{OfferID: lastTry, Channel: offers.ChannelSMS, Outcome: store.AttemptSending},
		{OfferID: staleLast, Channel: offers.ChannelSMS, Outcome: store.AttemptSending},
	}); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE river_job SET attempt = max_attempts - 1 WHERE args->>'offer_id' = ANY($1)`, []string{lastTry.String(), staleLast.String()})
	exec(`UPDATE offers SET redeliveries = 1 WHERE id = $1`, staleLast)
	// discarded and laterRound: River's rescuer discarded their jobs; a
	// receipt has since reopened laterRound for a new round of delivery.
	exec(`UPDATE river_job SET state = 'discarded', attempt = max_attempts, finalized_at = now(),
			errors = ARRAY[jsonb_build_object('at', now(), 'attempt', max_attempts, 'error', 'Stuck job rescued by JobRescuer', 'trace', '')]
		WHERE args->>'offer_id' = ANY($1)`, []string{discarded.String(), laterRound.String()})
	exec(`UPDATE offers SET redeliveries = 1 WHERE id = $1`, laterRound)

	smsSender, err := sms.New(sms.Config{AccountSID: sb.TwilioSID, AuthToken: sb.TwilioToken, From: twilioFrom, BaseURL: sb.TwilioURL})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := offers.NewSigner("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	givenUp := map[string]int64{}
	d, err := notifiers.New(notifiers.Config{GivenUp: func(how string, n int64) { mu.Lock(); givenUp[how] += n; mu.Unlock() },
		Pool: st.Pool(), Store: st, SMS: smsSender, Push: push.NewHub(), Signer: signer,
		LinkBase: "https://crescendo.test/o/", Workers: 2, RetryBase: 10 * time.Millisecond, SweepInterval: 200 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(sctx); err != nil {
			t.Error(err)
		}
	})

	status := func(id uuid.UUID) (string, string) {
		var s, reason string
		if err := st.Pool().QueryRow(ctx, `SELECT status, COALESCE(status_reason, '') FROM offers WHERE id = $1`, id).Scan(&s, &reason); err != nil {
			t.Fatal(err)
		}
		return s, reason
	}
	jobState := func(id uuid.UUID) string {
		var s string
		if err := st.Pool().QueryRow(ctx, `SELECT state::text FROM river_job WHERE args->>'offer_id' = $1`, id.String()).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	eventually(t, 30*time.Second, "both given-up offers to end and the stale job to finish", func() bool {
		a, _ := status(lastTry)
		b, _ := status(discarded)
		j := jobState(staleLast)
		return a != store.OfferIssued && b != store.OfferIssued && (j == "completed" || j == "discarded" || j == "cancelled")
	})
	if s, reason := status(lastTry); s != store.OfferFailed || !strings.Contains(reason, "retries exhausted after 8 attempts") || !strings.Contains(reason, "earlier attempt") {
		t.Errorf("offer on its last attempt: %s (%q), want failed: retries exhausted, asking about the earlier attempt", s, reason)
	}
	if s, reason := status(discarded); s != store.OfferFailed || reason != "delivery given up after 8 attempts: Stuck job rescued by JobRescuer" {
		t.Errorf("offer of a discarded job: %s (%q), want failed with the job's last error", s, reason)
	}
	// The sweep that ended discarded read laterRound's job in the same
	// statement: an offer in a later round is not the old job's to end.
	if s, _ := status(laterRound); s != store.OfferIssued {
		t.Errorf("offer reopened for a later round: %s, want still issued", s)
	}
	if s, reason := status(staleLast); s != store.OfferIssued {
		t.Errorf("offer reopened after its old job's last attempt began: %s (%q), want still issued", s, reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int64{notifiers.GivenUpRetries: 1, notifiers.GivenUpDiscarded: 1}; !maps.Equal(givenUp, want) {
		t.Errorf("given up: %v, want %v", givenUp, want)
	}
}

package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

// holders stores the catalog and n fans, linked as holder-<i> at partner "p",
// each holding one offer of rule "r" tier 1 delivered at sent and expiring at
// expires; it returns the fans and their offers, by i.
func holders(t *testing.T, s *store.Store, n int, sent, expires time.Time) (fans, offerIDs []uuid.UUID) {
	t.Helper()
	catalog(t, s)
	bulk := make([]store.BulkFan, n)
	for i := range n {
		fans = append(fans, uuid.New())
		offerIDs = append(offerIDs, uuid.New())
		bulk[i] = store.BulkFan{Fan: store.Fan{ID: fans[i], TimeZone: "UTC"}, PartnerUserID: fmt.Sprint("holder-", i)}
	}
	must(t, s.BulkLoadFans(t.Context(), "p", bulk))
	_, err := s.Pool().Exec(t.Context(), `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, status, issued_at, expires_at, delivered_at)
		SELECT o, f, 'r', 1, 1, 'perf', 'show', '{presale}', 30, 'e', 0, 'delivered', $3, $4, $3
		FROM unnest($1::uuid[], $2::uuid[]) AS t(o, f)`, offerIDs, fans, sent, expires)
	must(t, err)
	return fans, offerIDs
}

// redeemAll runs the requests at once and counts their outcomes by error
// (nil for successes).
func redeemAll(t *testing.T, s *store.Store, reqs []store.RedeemRequest) map[error]int {
	t.Helper()
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, r := range reqs {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Redeem(t.Context(), r)
		})
	}
	close(start)
	wg.Wait()
	counts := map[error]int{}
	for _, err := range errs {
		kind := err
		for _, known := range []error{store.ErrSoldOut, store.ErrAlreadyRedeemed} {
			if errors.Is(err, known) {
				kind = known
			}
		}
		counts[kind]++
	}
	return counts
}

func TestRedeemTakesExactlyTheTierInventory(t *testing.T) {
	s := open(t)
	now := time.Now()
	fans, ids := holders(t, s, 200, now.Add(-time.Minute), now.Add(time.Hour))
	must(t, s.SetTierInventory(t.Context(), "r", 1, 50))
	reqs := make([]store.RedeemRequest, len(ids))
	for i := range ids {
		reqs[i] = store.RedeemRequest{OfferID: ids[i], FanID: fans[i], PartnerID: "p"}
	}
	counts := redeemAll(t, s, reqs)
	if counts[nil] != 50 || counts[store.ErrSoldOut] != 150 || len(counts) != 2 {
		t.Fatalf("outcomes %v, want 50 successes and 150 ErrSoldOut", counts)
	}
	inv, err := s.TierInventories(t.Context(), "r")
	if err != nil || len(inv) != 1 || inv[0] != (store.TierInventory{RuleID: "r", Tier: 1, Units: 50, Redeemed: 50}) {
		t.Fatalf("inventory %+v, %v", inv, err)
	}
	var redeemed, rows int
	must(t, s.Pool().QueryRow(t.Context(), `SELECT (SELECT count(*) FROM offers WHERE status = 'redeemed' AND redeemed_at IS NOT NULL),
		(SELECT count(*) FROM redemptions)`).Scan(&redeemed, &rows))
	if redeemed != 50 || rows != 50 {
		t.Errorf("%d offers redeemed and %d redemptions recorded, want 50 of each", redeemed, rows)
	}
}

func TestRedeemOneOfferOnce(t *testing.T) {
	s := open(t)
	now := time.Now()
	fans, ids := holders(t, s, 1, now.Add(-time.Minute), now.Add(time.Hour))
	must(t, s.SetTierInventory(t.Context(), "r", 1, 5))
	reqs := make([]store.RedeemRequest, 100)
	for i := range reqs {
		reqs[i] = store.RedeemRequest{OfferID: ids[0], FanID: fans[0], PartnerID: "p"}
	}
	counts := redeemAll(t, s, reqs)
	if counts[nil] != 1 || counts[store.ErrAlreadyRedeemed] != 99 || len(counts) != 2 {
		t.Fatalf("outcomes %v, want 1 success and 99 ErrAlreadyRedeemed", counts)
	}
	inv, err := s.TierInventories(t.Context(), "r")
	if err != nil || len(inv) != 1 || inv[0].Redeemed != 1 {
		t.Fatalf("inventory %+v, %v: one redemption takes one unit", inv, err)
	}
}

func TestRedeemRefusals(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	now := time.Now()
	fans, ids := holders(t, s, 4, now.Add(-time.Hour), now.Add(time.Hour))
	req := func(i int) store.RedeemRequest {
		return store.RedeemRequest{OfferID: ids[i], FanID: fans[i], PartnerID: "p", At: now}
	}
	_, err := s.Pool().Exec(ctx, `UPDATE offers SET status = 'failed' WHERE id = $1`, ids[3])
	must(t, err)

	other := req(0)
	other.FanID = fans[1]
	late := req(0)
	late.At = now.Add(time.Hour)
	tokenLate := req(0)
	tokenLate.Expires = now // the token's expiry is earlier than the offer's
	missing := req(0)
	missing.OfferID = uuid.New()
	for name, c := range map[string]struct {
		req  store.RedeemRequest
		want error
	}{
		"another fan's offer":       {other, store.ErrNotYourOffer},
		"past the offer's expiry":   {late, store.ErrOfferExpired},
		"past the token's expiry":   {tokenLate, store.ErrOfferExpired},
		"an offer that is not here": {missing, store.ErrNotFound},
		"a void offer":              {req(3), store.ErrOfferVoid},
	} {
		if _, err := s.Redeem(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}

	// No units: refused, and the offer stays redeemable when units come.
	must(t, s.SetTierInventory(ctx, "r", 1, 0))
	if _, err := s.Redeem(ctx, req(0)); !errors.Is(err, store.ErrSoldOut) {
		t.Fatalf("no units: %v, want ErrSoldOut", err)
	}
	must(t, s.SetTierInventory(ctx, "r", 1, 1))
	if _, err := s.Redeem(ctx, req(0)); err != nil {
		t.Fatalf("after a unit is added: %v", err)
	}
	if _, err := s.Redeem(ctx, req(0)); !errors.Is(err, store.ErrAlreadyRedeemed) {
		t.Errorf("second redemption: %v, want ErrAlreadyRedeemed", err)
	}
	if _, err := s.Redeem(ctx, req(1)); !errors.Is(err, store.ErrSoldOut) {
		t.Errorf("after the last unit: %v, want ErrSoldOut", err)
	}
	// The expiry job leaves a redeemed offer alone, and expires the others.
	if n, err := s.ExpireOffers(ctx, now.Add(2*time.Hour)); err != nil || n != 2 {
		t.Errorf("expired %d offers, %v; want the 2 still open", n, err)
	}
	if _, err := s.Redeem(ctx, req(1)); !errors.Is(err, store.ErrOfferExpired) {
		t.Errorf("expired by the job: %v, want ErrOfferExpired", err)
	}

	var inv *store.InvalidError
	if err := s.SetTierInventory(ctx, "r", 1, 0); !errors.As(err, &inv) {
		t.Errorf("units below those redeemed: %v, want *InvalidError", err)
	}
	if err := s.SetTierInventory(ctx, "r", 0, -1); !errors.As(err, &inv) {
		t.Errorf("tier 0, negative units: %v, want *InvalidError", err)
	}
	if err := s.SetTierInventory(ctx, "nope", 1, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown rule: %v, want ErrNotFound", err)
	}
}

func TestOpenedOnceAndReactionTimesStored(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	sent := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	fans, ids := holders(t, s, 2, sent, sent.Add(time.Hour))

	for _, at := range []time.Time{sent.Add(3 * time.Second), sent.Add(5 * time.Second)} {
		l, err := s.MarkOpened(ctx, ids[0], at)
		if err != nil || l.OpenedAt == nil || !l.OpenedAt.Equal(sent.Add(3*time.Second)) {
			t.Fatalf("open at %v: opened_at %v, %v; want the first open", at, l.OpenedAt, err)
		}
		if l.Status != store.OfferDelivered || l.ShowName != "Show" || l.PerformerName != "Perf" || len(l.Perks) != 1 {
			t.Errorf("link shows %+v", l)
		}
	}
	red, err := s.Redeem(ctx, store.RedeemRequest{OfferID: ids[0], FanID: fans[0], PartnerID: "p", At: sent.Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if red.SentToOpened == nil || *red.SentToOpened != 3*time.Second || red.SentToRedeemed != 10*time.Second ||
		!red.SentAt.Equal(sent) || red.OfferID != ids[0] || red.Tier != 1 || red.ShowID != "show" || red.PartnerID != "p" {
		t.Errorf("redemption %+v", red)
	}
	stored, err := s.Redemptions(ctx, fans[0])
	if err != nil || len(stored) != 1 || stored[0].SentToRedeemed != 10*time.Second || *stored[0].SentToOpened != 3*time.Second {
		t.Fatalf("stored redemptions %+v, %v", stored, err)
	}
	// Redeemed without opening the link (in an app): no open reaction time.
	red, err = s.Redeem(ctx, store.RedeemRequest{OfferID: ids[1], FanID: fans[1], PartnerID: "p", At: sent.Add(time.Second)})
	if err != nil || red.OpenedAt != nil || red.SentToOpened != nil || red.SentToRedeemed != time.Second {
		t.Errorf("unopened redemption %+v, %v", red, err)
	}
	// Opening it afterwards is no first open of a live offer.
	if l, err := s.MarkOpened(ctx, ids[1], sent.Add(2*time.Second)); err != nil || l.OpenedAt != nil || l.Status != store.OfferRedeemed {
		t.Errorf("open after redemption: %+v, %v", l, err)
	}
	if _, err := s.MarkOpened(ctx, uuid.New(), sent); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown offer: %v, want ErrNotFound", err)
	}
	// Erasure takes the fan's redemptions with it (F3).
	must(t, s.EraseFan(ctx, fans[0], "test"))
	if stored, err := s.Redemptions(ctx, fans[0]); err != nil || len(stored) != 0 {
		t.Errorf("after erasure: %+v, %v", stored, err)
	}
}

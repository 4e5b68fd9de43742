package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

func appendPush(t *testing.T, s *store.Store, fan, offer uuid.UUID, n int) store.PushAppended {
	t.Helper()
	res, err := s.AppendPush(t.Context(), store.PushAppend{FanID: fan, OfferID: offer, Event: "offer", Data: fmt.Appendf(nil, `{"n":%d}`, n)})
	must(t, err)
	return res
}

func TestPushesAreKeptOnlyWhenSomethingTakesThemAndOncePerOffer(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	fan := catalog(t, s)
	replica := uuid.New()

	if res := appendPush(t, s, fan, uuid.Nil, 0); res.Seq != 0 {
		t.Fatalf("kept a push no stream or webhook takes: %+v", res)
	}
	ok, err := s.SetPushPresence(ctx, replica, fan, time.Minute)
	must(t, err)
	if !ok {
		t.Fatal("presence refused for a fan that exists")
	}
	if ok, err := s.SetPushPresence(ctx, replica, uuid.New(), time.Minute); err != nil || ok {
		t.Fatalf("presence of a fan that does not exist: %v, %v", ok, err)
	}
	reach, err := s.PushReach(ctx, fan)
	must(t, err)
	if !reach.Stream || reach.Webhook {
		t.Fatalf("reach %+v, want a stream and no webhook", reach)
	}
	var seqs []int64
	for i := range 3 {
		res := appendPush(t, s, fan, uuid.Nil, i+1)
		if !res.Stream || res.Webhooks != 0 || res.Repeat || res.Seq == 0 {
			t.Fatalf("append %d: %+v", i, res)
		}
		seqs = append(seqs, res.Seq)
	}
	if !slices.IsSorted(seqs) {
		t.Fatalf("seqs %v not increasing", seqs)
	}
	got, err := s.PushesAfter(ctx, fan, seqs[0], 10)
	must(t, err)
	if len(got) != 2 || got[0].Seq != seqs[1] || got[1].Seq != seqs[2] || string(got[1].Data) != `{"n": 3}` || got[1].Event != "offer" || got[1].OfferID != uuid.Nil {
		t.Fatalf("pushes after %d: %+v", seqs[0], got)
	}
	if last, err := s.LastPushSeq(ctx, fan); err != nil || last != seqs[2] {
		t.Fatalf("last seq %d, %v; want %d", last, err, seqs[2])
	}

	// A push for an offer is kept once, however often it is delivered.
	offer := uuid.New()
	_, err = s.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id, perks,
			index_value, event_id, partition, issued_at, expires_at)
		VALUES ($1, $2, 'r', 1, 1, 'perf', 'show', '{presale}', 12, 'e', 0, now(), now() + interval '1 hour')`, offer, fan)
	must(t, err)
	first := appendPush(t, s, fan, offer, 4)
	again := appendPush(t, s, fan, offer, 4)
	if first.Repeat || !again.Repeat || again.Seq != first.Seq {
		t.Fatalf("repeat delivery of an offer: first %+v, again %+v", first, again)
	}
	if seq, ok, err := s.PushSeqForOffer(ctx, offer, "offer"); err != nil || !ok || seq != first.Seq {
		t.Fatalf("offer's push: %d %v %v", seq, ok, err)
	}

	// Retention deletes what is older than it keeps.
	if n, err := s.DeletePushesBefore(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("deleted %d recent pushes, %v", n, err)
	}
	if n, err := s.DeletePushesBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 4 {
		t.Fatalf("deleted %d pushes, %v; want 4", n, err)
	}
	if left, err := s.PushesAfter(ctx, fan, 0, 10); err != nil || len(left) != 0 {
		t.Fatalf("left %+v, %v", left, err)
	}

	// A fan who turned pushes off gets none, in the app or through a webhook.
	_, err = s.Pool().Exec(ctx, `UPDATE fans SET push_enabled = false WHERE id = $1`, fan)
	must(t, err)
	if reach, err := s.PushReach(ctx, fan); err != nil || reach.Stream || reach.Webhook {
		t.Fatalf("reach of a fan with pushes off: %+v, %v", reach, err)
	}
	if res := appendPush(t, s, fan, uuid.Nil, 5); res.Seq != 0 {
		t.Fatalf("kept a push for a fan with pushes off: %+v", res)
	}
	_, err = s.Pool().Exec(ctx, `UPDATE fans SET push_enabled = true WHERE id = $1`, fan)
	must(t, err)

	// Presence ends with the stream, and when it is not renewed.
	must(t, s.ClearPushPresence(ctx, replica, fan))
	if reach, _ := s.PushReach(ctx, fan); reach.Stream {
		t.Fatal("online after the presence was cleared")
	}
	if _, err := s.SetPushPresence(ctx, replica, fan, -time.Second); err != nil {
		t.Fatal(err)
	}
	if reach, _ := s.PushReach(ctx, fan); reach.Stream {
		t.Fatal("online on an expired presence")
	}
	// Another replica's renewal deletes the expired row; this one's then finds it missing.
	if _, err := s.RenewPushPresence(ctx, uuid.New(), nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	missing, err := s.RenewPushPresence(ctx, replica, []uuid.UUID{fan}, time.Minute)
	must(t, err)
	if len(missing) != 1 || missing[0] != fan {
		t.Fatalf("renewing a deleted presence: missing %v, want the fan", missing)
	}
}

func TestAFansPushesBecomeVisibleInSeqOrder(t *testing.T) {
	// A stream reads the fan's pushes after the last seq it sent: if a later
	// seq could commit before an earlier one, the reader would step over it.
	s := open(t)
	ctx := t.Context()
	fan := catalog(t, s)
	other := uuid.New()
	must(t, s.PutFan(ctx, store.Fan{ID: other, DisplayName: "Other", TimeZone: "UTC"}))
	for _, f := range []uuid.UUID{fan, other} {
		if _, err := s.SetPushPresence(ctx, uuid.New(), f, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	var appended []int64
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				target := fan
				if i%3 == 0 {
					target = other // interleaves the global sequence
				}
				res, err := s.AppendPush(ctx, store.PushAppend{FanID: target, Event: "offer", Data: fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)})
				if err != nil {
					t.Error(err)
					return
				}
				if target == fan {
					mu.Lock()
					appended = append(appended, res.Seq)
					mu.Unlock()
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	var cursor int64
	var seen []int64
	read := func() {
		ps, err := s.PushesAfter(ctx, fan, cursor, 7)
		must(t, err)
		for _, p := range ps {
			seen = append(seen, p.Seq)
			cursor = p.Seq
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		read()
	}
	for before := -1; before != len(seen); {
		before = len(seen)
		read()
	}
	slices.Sort(appended)
	if !slices.Equal(seen, appended) {
		t.Fatalf("a reader following the fan's pushes saw %d of %d; first difference at %v", len(seen), len(appended), firstDiff(seen, appended))
	}
}

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestWebhookDeliveriesAreClaimedRetriedFencedAndErased(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	fan := catalog(t, s) // linked at partner p as user-1
	must(t, s.PutPartner(ctx, store.Partner{ID: "q", Name: "Q", APIKey: "key-q"}))
	must(t, s.LinkAccount(ctx, "q", "q-user", fan))

	hook, created, err := s.PutPartnerWebhook(ctx, store.PartnerWebhook{PartnerID: "p", URL: "https://p.example/hook", Secret: []byte("sealed-1")})
	must(t, err)
	if !created || hook.CreatedAt.IsZero() {
		t.Fatalf("first registration: created %v, %+v", created, hook)
	}
	if _, created, err := s.PutPartnerWebhook(ctx, store.PartnerWebhook{PartnerID: "p", URL: "https://p.example/v2", Secret: []byte("sealed-2")}); err != nil || created {
		t.Fatalf("replacing: created %v, %v", created, err)
	}
	if w, err := s.PartnerWebhook(ctx, "p"); err != nil || w.URL != "https://p.example/v2" || string(w.Secret) != "sealed-2" {
		t.Fatalf("registration %+v, %v", w, err)
	}
	if _, err := s.PartnerWebhook(ctx, "q"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("partner without a webhook: %v", err)
	}

	// No stream, but p's webhook takes it: one delivery, for p's account only.
	res := appendPush(t, s, fan, uuid.Nil, 1)
	if res.Seq == 0 || res.Stream || res.Webhooks != 1 {
		t.Fatalf("append: %+v", res)
	}
	if due, pending, err := s.NextPushWebhookDue(ctx); err != nil || !pending || due > 0 {
		t.Fatalf("next due %s, %v, %v", due, pending, err)
	}
	claim := func() []store.PushWebhookDelivery {
		ds, err := s.ClaimPushWebhookDeliveries(ctx, 10, time.Minute)
		must(t, err)
		return ds
	}
	ds := claim()
	if len(ds) != 1 || ds[0].PartnerUserID != "user-1" || ds[0].Attempt != 1 || ds[0].URL != "https://p.example/v2" ||
		string(ds[0].Secret) != "sealed-2" || ds[0].Push.Seq != res.Seq || ds[0].Expired || ds[0].Unlinked {
		t.Fatalf("claimed %+v", ds)
	}
	if again := claim(); len(again) != 0 {
		t.Fatalf("a leased delivery was claimed again: %+v", again)
	}
	ok, err := s.FinishPushWebhookDelivery(ctx, ds[0].ID, 1, store.PushWebhookOutcome{State: store.PushWebhookPending, Status: 503, Error: "503 Service Unavailable"})
	must(t, err)
	if !ok {
		t.Fatal("retry not recorded")
	}
	ds2 := claim()
	if len(ds2) != 1 || ds2[0].Attempt != 2 {
		t.Fatalf("retry claimed %+v", ds2)
	}
	// The first attempt's late answer no longer counts.
	if ok, err := s.FinishPushWebhookDelivery(ctx, ds[0].ID, 1, store.PushWebhookOutcome{State: store.PushWebhookDelivered, Status: 200}); err != nil || ok {
		t.Fatalf("a taken-over attempt recorded its outcome: %v, %v", ok, err)
	}
	if ok, err := s.FinishPushWebhookDelivery(ctx, ds[0].ID, 2, store.PushWebhookOutcome{State: store.PushWebhookDelivered, Status: 204}); err != nil || !ok {
		t.Fatalf("delivery not recorded: %v, %v", ok, err)
	}
	states, err := s.PushWebhookDeliveries(ctx, res.Seq)
	must(t, err)
	if len(states) != 1 || states[0].State != store.PushWebhookDelivered || states[0].Attempts != 2 || states[0].LastStatus != 204 ||
		states[0].LastError != "" || states[0].DeliveredAt == nil {
		t.Fatalf("states %+v", states)
	}

	// Removing the webhook fails what is pending to it.
	res2 := appendPush(t, s, fan, uuid.Nil, 2)
	must(t, s.DeletePartnerWebhook(ctx, "p"))
	if err := s.DeletePartnerWebhook(ctx, "p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	states, err = s.PushWebhookDeliveries(ctx, res2.Seq)
	must(t, err)
	if len(states) != 1 || states[0].State != store.PushWebhookFailed || states[0].LastError == "" {
		t.Fatalf("pending delivery after removal: %+v", states)
	}
	if _, pending, _ := s.NextPushWebhookDue(ctx); pending {
		t.Fatal("a delivery is still pending")
	}

	// Erasure takes the pushes, their deliveries and presence with the fan.
	_, _, err = s.PutPartnerWebhook(ctx, store.PartnerWebhook{PartnerID: "q", URL: "https://q.example/", Secret: []byte("s")})
	must(t, err)
	if _, err := s.SetPushPresence(ctx, uuid.New(), fan, time.Hour); err != nil {
		t.Fatal(err)
	}
	appendPush(t, s, fan, uuid.Nil, 3)
	must(t, s.EraseFan(ctx, fan, "test"))
	var left int
	must(t, s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM push_messages) + (SELECT count(*) FROM push_webhook_deliveries)
		+ (SELECT count(*) FROM push_presence)`).Scan(&left))
	if left != 0 {
		t.Fatalf("%d push rows outlived the fan's erasure", left)
	}
	if _, err := s.AppendPush(ctx, store.PushAppend{FanID: fan, Event: "offer", Data: []byte(`{}`)}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("push to an erased fan: %v", err)
	}
}

package app_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

func socialGraph(user, id string, at time.Time, friends int64) kafka.Message {
	v, err := events.Encode(events.Event{ID: id, Source: partnerID, Subject: user, Type: events.TypeSocialGraph, Time: at,
		SocialGraph: &events.SocialGraph{FriendCount: friends}})
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(user), Value: v}
}

// Rules' gates run on the live path: a CEL condition, a budget the database
// enforces across partitions, quiet hours that hold delivery, and the reason
// recorded when a crossing issues nothing. A dry run of a draft rule over the
// same activity reports what it would issue and issues nothing.
func TestRuleGatesOnTheLivePathAndADryRun(t *testing.T) {
	e := newEnv(t)
	friendly := fan{id: uuid.New(), user: "r-friendly", email: "friendly@example.com"}
	loner := fan{id: uuid.New(), user: "r-loner", phone: "+14155550199"}
	now := time.Now().UTC().Truncate(time.Second)
	// Quiet hours around now in the fans' zone.
	zone, err := time.LoadLocation(fanZone)
	if err != nil {
		t.Fatal(err)
	}
	local := now.In(zone)
	quiet := &offers.QuietHours{Start: local.Add(-time.Hour).Format("15:04"), End: local.Add(time.Hour).Format("15:04"), Mode: offers.QuietHold}
	base := func(id string) offers.Rule {
		return offers.Rule{ID: id, PerformerID: "aurora", ShowID: "roundhouse", Lifetime: 24 * time.Hour,
			Tiers: []offers.Tier{{Threshold: 5, Perks: []string{"presale"}}}, Channels: []offers.Channel{offers.ChannelEmail, offers.ChannelSMS}}
	}
	friends, budget, night, draft := base("friends"), base("budget-one"), base("night"), base("draft")
	friends.Condition = `fan.friend_count >= 100 && session.live`
	budget.Budget = 1
	night.QuietHours = quiet
	draft.Tiers = []offers.Tier{{Threshold: 3, Perks: []string{"presale"}}, {Threshold: 100, Perks: []string{"backstage"}}}
	a := e.start(func(ctx context.Context, st *store.Store) error {
		if err := seedCatalog(ctx, st, []fan{friendly, loner}); err != nil {
			return err
		}
		for _, r := range []offers.Rule{friends, budget, night, draft} {
			if _, err := st.PutRule(ctx, r); err != nil {
				return err
			}
		}
		_, err := st.Pool().Exec(ctx, `UPDATE rules SET active = false WHERE id = 'draft'`)
		return err
	})
	defer a.Shutdown(context.Background())

	e.publish(
		socialGraph(friendly.user, "g1", now.Add(-time.Minute), 150),
		listen(friendly.user, "f1", now, "aurora", 6),
		listen(loner.user, "l1", now, "aurora", 6),
	)
	type row struct {
		rule, reason string
		fan          uuid.UUID
	}
	var decisions []row
	eventually(t, 15*time.Second, "the decisions of both crossings", func() bool {
		rows, err := a.Store.Pool().Query(t.Context(), `SELECT rule_id, reason, fan_id FROM offer_decisions ORDER BY rule_id, reason`)
		if err != nil {
			t.Fatal(err)
		}
		decisions = decisions[:0]
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.rule, &r.reason, &r.fan); err != nil {
				t.Fatal(err)
			}
			decisions = append(decisions, r)
		}
		return len(decisions) >= 2
	})
	if len(decisions) != 2 || decisions[0] != (row{"budget-one", "budget_exhausted", decisions[0].fan}) ||
		decisions[1] != (row{"friends", "condition_false", loner.id}) {
		t.Fatalf("decisions %+v, want one budget_exhausted and the loner's condition_false", decisions)
	}

	held := map[string][]uuid.UUID{}
	eventually(t, 10*time.Second, "the offers", func() bool {
		rows, err := a.Store.Pool().Query(t.Context(), `SELECT rule_id, fan_id, deliver_after IS NOT NULL FROM offers ORDER BY rule_id`)
		if err != nil {
			t.Fatal(err)
		}
		clear(held)
		n := 0
		for rows.Next() {
			var rule string
			var f uuid.UUID
			var deferred bool
			if err := rows.Scan(&rule, &f, &deferred); err != nil {
				t.Fatal(err)
			}
			if deferred != (rule == "night") {
				t.Fatalf("offer of %s deferred=%v", rule, deferred)
			}
			held[rule] = append(held[rule], f)
			n++
		}
		return n == 4 // friends 1, budget-one 1, night 2, presale (threshold 10) none
	})
	if !slices.Equal(held["friends"], []uuid.UUID{friendly.id}) || len(held["budget-one"]) != 1 || len(held["night"]) != 2 || len(held["draft"]) != 0 {
		t.Fatalf("offers by rule %v", held)
	}
	if other := decisions[0].fan; !slices.Contains([]uuid.UUID{friendly.id, loner.id}, other) || other == held["budget-one"][0] {
		t.Fatalf("budget refused %v and granted %v", other, held["budget-one"])
	}

	// The explanation tells the loner why the friends rule gave nothing.
	status, body := call(t, "GET", "http://"+a.HTTPAddr+"/v1/users/"+loner.user+"/index/aurora", partnerKey, nil)
	found := false
	for _, r := range body["rules"].([]any) {
		m := r.(map[string]any)
		if m["rule_id"] == "friends" && m["offered"] == false && m["reason"] == "condition_false" {
			found = true
		}
	}
	if status != 200 || !found {
		t.Fatalf("explanation of the loner: %d %v", status, body["rules"])
	}

	rep, err := a.Replay.DryRun(t.Context(), "draft", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Offers != 2 || rep.ByTier[1] != 2 || rep.ByChannel["email"] != 1 || rep.ByChannel["sms"] != 1 || rep.Events != 3 {
		t.Fatalf("dry run: %+v", rep)
	}
	if got := fmt.Sprint(len(held["draft"])); got != "0" {
		t.Fatal("the dry run issued offers")
	}
	var drafted int
	if err := a.Store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM offers WHERE rule_id = 'draft'`).Scan(&drafted); err != nil || drafted != 0 {
		t.Fatalf("offers of the draft rule after the dry run: %d %v", drafted, err)
	}
}

func ticketPurchase(user, id string, at time.Time, show string) kafka.Message {
	v, err := events.Encode(events.Event{ID: id, Source: partnerID, Subject: user, Type: events.TypeTicketPurchase, Time: at,
		TicketPurchase: &events.TicketPurchase{Event: show, Performer: "aurora", Venue: events.Venue{Lat: 51.5, Lon: -0.1}, Quantity: 2, Price: 4500}})
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(user), Value: v}
}

// A show's presale codes go one per offer until the pool is empty, which
// stops offers with a recorded reason; a holdout's purchases set against the
// offered fans' give the rule's uplift. The funnel shows both, to its
// organization only.
func TestPresaleCodesHoldoutAndFunnel(t *testing.T) {
	e := newEnv(t)
	var fans []fan
	for i := range 10 {
		user := fmt.Sprintf("pf-%d", i)
		fans = append(fans, fan{id: uuid.NewSHA1(uuid.NameSpaceURL, []byte(user)), user: user, email: user + "@example.com"})
	}
	codes := offers.Rule{ID: "codes", PerformerID: "aurora", ShowID: "roundhouse", Lifetime: 24 * time.Hour,
		Tiers: []offers.Tier{{Threshold: 5, Perks: []string{"presale"}}}, Channels: []offers.Channel{offers.ChannelEmail}}
	held := codes
	held.ID, held.ShowID, held.Holdout = "held", "arena", 0.5
	var acme, rival string
	a := e.start(func(ctx context.Context, st *store.Store) error {
		if err := seedCatalog(ctx, st, fans); err != nil {
			return err
		}
		if err := st.PutShow(ctx, store.Show{ID: "arena", PerformerID: "aurora", Name: "Arena night",
			StartsAt: time.Date(2027, 4, 1, 20, 0, 0, 0, time.UTC), VenueName: "Arena", VenueLat: 51.5, VenueLon: -0.1}); err != nil {
			return err
		}
		for _, r := range []offers.Rule{codes, held} {
			if _, err := st.PutRule(ctx, r); err != nil {
				return err
			}
		}
		for _, org := range []string{"acme", "rival"} {
			if _, err := st.CreateOrganization(ctx, org, org); err != nil {
				return err
			}
		}
		if err := st.AssignPerformer(ctx, "acme", "aurora"); err != nil {
			return err
		}
		var err error
		if _, acme, err = st.CreateToken(ctx, "acme", store.RoleMarketer, "test"); err != nil {
			return err
		}
		_, rival, err = st.CreateToken(ctx, "rival", store.RoleAdmin, "test")
		return err
	})
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	if status, _ := call(t, "POST", base+"/v1/shows/roundhouse/presale-codes", rival, map[string]any{"codes": []string{"X"}}); status != 404 {
		t.Fatalf("another organization importing codes: %d, want 404", status)
	}
	status, body := call(t, "POST", base+"/v1/shows/roundhouse/presale-codes", acme, map[string]any{"codes": []string{"ROUND-1", "ROUND-2", "ROUND-1"}})
	if status != 200 || body["imported"] != 2.0 || body["skipped"] != 1.0 {
		t.Fatalf("importing codes: %d %v", status, body)
	}

	now := time.Now().UTC().Truncate(time.Second)
	var msgs []kafka.Message
	for i, f := range fans {
		msgs = append(msgs, listen(f.user, fmt.Sprintf("l%d", i), now, "aurora", 6))
	}
	e.publish(msgs...)
	funnel := func(rule string) map[string]any {
		t.Helper()
		status, body := call(t, "GET", base+"/v1/rules/"+rule+"/funnel", acme, nil)
		if status != 200 {
			t.Fatalf("funnel of %s: %d %v", rule, status, body)
		}
		return body["tiers"].([]any)[0].(map[string]any)
	}
	eventually(t, 15*time.Second, "every fan to cross both rules", func() bool {
		c, h := funnel("codes"), funnel("held")
		return c["crossed"] == 10.0 && h["crossed"] == 10.0
	})
	c := funnel("codes")
	if c["offered"] != 2.0 || c["eligible"] != 10.0 || c["dropped_out"].(map[string]any)["presale_codes_exhausted"] != 8.0 {
		t.Fatalf("codes funnel: %v", c)
	}
	var withCodes []string
	rows, err := a.Store.Pool().Query(t.Context(), `SELECT presale_code FROM offers WHERE rule_id = 'codes' ORDER BY presale_code`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var code string
		if err := rows.Scan(&code); err != nil {
			t.Fatal(err)
		}
		withCodes = append(withCodes, code)
	}
	if !slices.Equal(withCodes, []string{"ROUND-1", "ROUND-2"}) {
		t.Fatalf("codes given: %v", withCodes)
	}
	if status, _ := call(t, "GET", base+"/v1/rules/codes/funnel", rival, nil); status != 404 {
		t.Fatalf("another organization's funnel: %d, want 404", status)
	}

	// One offered and one held-out fan buy tickets for the arena show.
	h := funnel("held")
	offered, holdout := h["offered"].(float64), h["holdout"].(float64)
	if offered == 0 || holdout == 0 || offered+holdout != 10 {
		t.Fatalf("holdout split: %v", h)
	}
	var inOffer, inHoldout string
	for _, f := range fans {
		var n int
		if err := a.Store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM offers WHERE rule_id = 'held' AND fan_id = $1`, f.id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 && inOffer == "" {
			inOffer = f.user
		}
		if n == 0 && inHoldout == "" {
			inHoldout = f.user
		}
	}
	e.publish(ticketPurchase(inOffer, "b1", now.Add(time.Minute), "arena"), ticketPurchase(inHoldout, "b2", now.Add(time.Minute), "arena"))
	eventually(t, 10*time.Second, "the purchases in the funnel", func() bool {
		h = funnel("held")
		return h["offered_converted"] == 1.0 && h["holdout_converted"] == 1.0
	})
	if want := 1/offered - 1/holdout; h["uplift"].(float64)-want > 1e-9 || want-h["uplift"].(float64) > 1e-9 {
		t.Fatalf("uplift %v, want %v", h["uplift"], want)
	}
}

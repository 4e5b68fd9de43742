package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/store"
)

func purchaseAt(user, id string, at time.Time, lat, lon float64) kafka.Message {
	v, err := events.Encode(events.Event{ID: id, Source: partnerID, Subject: user, Type: events.TypeTicketPurchase, Time: at,
		TicketPurchase: &events.TicketPurchase{Event: "roundhouse", Performer: "aurora", Venue: events.Venue{Lat: lat, Lon: lon}, Quantity: 1, Price: 4500}})
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(user), Value: v}
}

// TestBotSignalsOnTheLivePath runs the real consumer: an account with three
// friends buys in London and, an hour later, in Tokyo; its partner resends
// the Tokyo purchase. The resend is dead-lettered as a duplicate, the
// account is classified automated with both reasons, its crossing issues no
// offer but the automated_account decision, and the explanation API shows
// the class; a person crossing the same rule gets the offer.
func TestBotSignalsOnTheLivePath(t *testing.T) {
	e := newEnv(t)
	bot := fan{id: uuid.New(), user: "b-bot", email: "bot@example.com"}
	person := fan{id: uuid.New(), user: "b-person", email: "person@example.com"}
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, []fan{bot, person}) })
	defer a.Shutdown(context.Background())
	now := time.Now().UTC().Truncate(time.Second)
	e.publish(
		socialGraph(bot.user, "g1", now.Add(-3*time.Hour), 3),
		purchaseAt(bot.user, "p1", now.Add(-2*time.Hour), 51.51, -0.13),
		purchaseAt(bot.user, "p2", now.Add(-time.Hour), 35.68, 139.69),
		purchaseAt(bot.user, "p2", now.Add(-time.Hour), 35.68, 139.69),
		listen(bot.user, "l1", now, "aurora", 11),
		listen(person.user, "l2", now, "aurora", 11),
	)
	var reason string
	eventually(t, 15*time.Second, "the bot's decision", func() bool {
		err := a.Store.Pool().QueryRow(t.Context(), `SELECT reason FROM offer_decisions WHERE fan_id = $1`, bot.id).Scan(&reason)
		return err == nil
	})
	if reason != "automated_account" {
		t.Fatalf("bot's decision %q, want automated_account", reason)
	}
	eventually(t, 10*time.Second, "the person's offer", func() bool {
		var n int
		err := a.Store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM offers WHERE fan_id = $1`, person.id).Scan(&n)
		return err == nil && n == 1
	})
	var botOffers int
	if err := a.Store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM offers WHERE fan_id = $1`, bot.id).Scan(&botOffers); err != nil || botOffers != 0 {
		t.Fatalf("bot holds %d offers (%v), want none", botOffers, err)
	}
	dlq := readAll(t, e.brokers, dlqTopic, 0, 1)
	if got := header(dlq[0], "dlq_reason"); got != "duplicate_purchase" {
		t.Fatalf("DLQ reason %q, want duplicate_purchase", got)
	}

	status, body := call(t, "GET", "http://"+a.HTTPAddr+"/v1/users/"+bot.user+"/index/aurora", partnerKey, nil)
	c, _ := body["classification"].(map[string]any)
	if status != 200 || c["class"] != "automated" {
		t.Fatalf("explanation: %d %v", status, body)
	}
	signals := map[string]bool{}
	for _, r := range c["reasons"].([]any) {
		signals[r.(map[string]any)["signal"].(string)] = true
	}
	if !signals["low_friends"] || !signals["impossible_travel"] || len(signals) != 2 {
		t.Fatalf("reasons %v, want low_friends and impossible_travel", c["reasons"])
	}
	_, body = call(t, "GET", "http://"+a.HTTPAddr+"/v1/users/"+person.user+"/index/aurora", partnerKey, nil)
	if c, _ := body["classification"].(map[string]any); c["class"] != "human" {
		t.Fatalf("person's classification %v", body["classification"])
	}
}

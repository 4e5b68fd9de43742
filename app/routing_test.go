package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/store"
)

// partitionOf is where a record keyed by key lands under the partitioner
// partner apps use (KAFKA_PARTITIONER's default).
func partitionOf(key string) int {
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	return kafka.Murmur2Balancer{Consistent: true}.Balance(kafka.Message{Key: []byte(key)}, parts...)
}

// A fan with accounts at two partners has one index: events of the second
// account, keyed by its own id and so read in another partition, are routed
// to the partition that holds the fan's state. Each counts once, even when a
// routed copy arrives twice, and a forged routing mark is dead-lettered.
func TestFanWithAccountsAtTwoPartnersHasOneIndex(t *testing.T) {
	e := newEnv(t)
	const other = "tunely"
	home := fan{id: uuid.New(), user: "a-home", email: "two@example.com"}
	// The second account's id must land in another partition than the first's.
	second := ""
	for i := 0; second == ""; i++ {
		if c := fmt.Sprintf("t-%d", i); partitionOf(c) != partitionOf(home.user) {
			second = c
		}
	}
	a := e.start(func(ctx context.Context, st *store.Store) error {
		if err := seedCatalog(ctx, st, []fan{home}); err != nil {
			return err
		}
		if err := st.PutPartner(ctx, store.Partner{ID: other, Name: "Tunely", APIKey: "pk_test_tunely_0123456789"}); err != nil {
			return err
		}
		return st.LinkAccount(ctx, other, second, home.id)
	})
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	// 3 listens of 3 minutes at each partner: 9 minutes in each partition,
	// under the rule's threshold of 10, and 18 in the fan's one index.
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []kafka.Message
	for i := range 3 {
		msgs = append(msgs, listen(home.user, fmt.Sprintf("h-%d", i), now.Add(time.Duration(2*i)*time.Minute), "aurora", 3))
		msgs = append(msgs, listenAt(other, second, fmt.Sprintf("o-%d", i), now.Add(time.Duration(2*i+1)*time.Minute), "aurora", 3))
	}
	e.publish(msgs...)
	eventually(t, 15*time.Second, "both partners' events to be applied", func() bool {
		s := a.Consumer.Stats()
		return s.Applied == 6 && s.RoutedIn == 3
	})

	var total float64
	var ids []string
	eventually(t, 10*time.Second, "the contributions to be checkpointed", func() bool {
		status, body := call(t, "GET", base+"/v1/users/"+home.user+"/index/aurora", partnerKey, nil)
		if status != 200 {
			t.Fatalf("explanation: status %d %v", status, body)
		}
		ex, _ := body["explanation"].(map[string]any)
		items, _ := ex["items"].([]any)
		total, _ = ex["total"].(float64)
		ids = ids[:0]
		for _, it := range items {
			id, _ := it.(map[string]any)["event_id"].(string)
			ids = append(ids, id)
		}
		return len(items) >= 6
	})
	slices.Sort(ids)
	want := []string{"streamly/h-0", "streamly/h-1", "streamly/h-2", "tunely/o-0", "tunely/o-1", "tunely/o-2"}
	if total != 18 || !slices.Equal(ids, want) {
		t.Fatalf("index %v from %v, want 18 from %v", total, ids, want)
	}

	// Only the whole index crosses the threshold: one offer, from the home partition.
	var offers []store.StoredOffer
	eventually(t, 10*time.Second, "the offer", func() bool {
		var err error
		offers, err = a.Store.Offers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return len(offers) > 0
	})
	if len(offers) != 1 || offers[0].FanID != home.id || offers[0].Partition != partitionOf(home.user) {
		t.Fatalf("offers %+v, want one for %v from partition %d", offers, home.id, partitionOf(home.user))
	}

	// A routed copy delivered again (its sender crashed before checkpointing)
	// is skipped; one with a forged mark is dead-lettered.
	recs := readAll(t, e.brokers, topic, partitionOf(home.user), 6)
	var routed kafka.Message
	for _, m := range recs {
		if header(m, "crescendo-routed-from") != "" {
			routed = m
		}
	}
	if routed.Value == nil {
		t.Fatal("no routed copy in the home partition")
	}
	forged := kafka.Message{Key: routed.Key, Value: routed.Value}
	for _, h := range routed.Headers {
		if h.Key == "crescendo-routed-from" {
			h.Value = []byte(fmt.Sprintf("%d:%d", partitionOf(second), 1<<40))
		}
		forged.Headers = append(forged.Headers, h)
	}
	again := kafka.Message{Key: routed.Key, Value: routed.Value, Headers: routed.Headers}
	e.publish(again, forged)
	eventually(t, 10*time.Second, "the repeat to be skipped and the forgery dead-lettered", func() bool {
		return a.Consumer.Stats().RoutedRepeat == 1 && a.Consumer.DeadLetteredByReason()["bad_routing_mark"] == 1
	})
	if s := a.Consumer.Stats(); s.Applied != 6 || s.RoutedIn != 3 {
		t.Fatalf("after the repeat: %d applied, %d routed in; want 6 and 3", s.Applied, s.RoutedIn)
	}
}

func listenAt(source, user, id string, at time.Time, performer string, minutes int) kafka.Message {
	v, err := events.Encode(events.Event{ID: id, Source: source, Subject: user, Type: events.TypeListen, Time: at,
		Listen: &events.Listen{Performer: performer, Track: "t", MsPlayed: int64(minutes) * 60_000, Device: "mobile", Country: "GB"}})
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(user), Value: v}
}

// A fan registered at one partner links an account at another with a one-time
// code; from then on both accounts' events build the fan's one index.
func TestLinkCodeJoinsAnAccountAtAnotherPartner(t *testing.T) {
	e := newEnv(t)
	const other, otherKey = "tunely", "pk_test_tunely_0123456789"
	a := e.start(func(ctx context.Context, st *store.Store) error {
		if err := seedCatalog(ctx, st, nil); err != nil {
			return err
		}
		return st.PutPartner(ctx, store.Partner{ID: other, Name: "Tunely", APIKey: otherKey})
	})
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr
	consent := map[string]any{"wording": "Count my listening towards presale offers."}

	status, body := call(t, "PUT", base+"/v1/users/s-1", partnerKey, map[string]any{
		"profile": map[string]any{"display_name": "Ada", "email": "ada@example.com", "time_zone": "Europe/London"},
		"consent": consent,
	})
	if status != 201 {
		t.Fatalf("registering at streamly: %d %v", status, body)
	}
	fanID := body["fan_id"]
	if status, _ := call(t, "POST", base+"/v1/users/nobody/link-codes", partnerKey, nil); status != 404 {
		t.Fatalf("link code for an unknown user: %d, want 404", status)
	}
	status, body = call(t, "POST", base+"/v1/users/s-1/link-codes", partnerKey, nil)
	code, _ := body["code"].(string)
	if status != 201 || len(code) != 11 {
		t.Fatalf("link code: %d %v", status, body)
	}

	// The second account needs no profile: the fan keeps theirs.
	second := ""
	for i := 0; second == ""; i++ {
		if c := fmt.Sprintf("t-%d", i); partitionOf(c) != partitionOf("s-1") {
			second = c
		}
	}
	if status, body := call(t, "PUT", base+"/v1/users/"+second, otherKey, map[string]any{"consent": consent}); status != 422 {
		t.Fatalf("registering without profile or code: %d %v", status, body)
	}
	status, body = call(t, "PUT", base+"/v1/users/"+second, otherKey, map[string]any{"consent": consent, "link_code": strings.ToLower(code)})
	if status != 200 || body["fan_id"] != fanID {
		t.Fatalf("linking with the code: %d %v, want 200 and fan %v", status, body, fanID)
	}
	status, body = call(t, "PUT", base+"/v1/users/t-other", otherKey, map[string]any{"consent": consent, "link_code": code})
	if status != 422 {
		t.Fatalf("reusing the code: %d %v, want 422", status, body)
	}
	status, body = call(t, "GET", base+"/v1/users/s-1", partnerKey, nil)
	if status != 200 || body["fan"].(map[string]any)["profile"].(map[string]any)["email"] != "ada@example.com" {
		t.Fatalf("the fan's profile after linking: %d %v", status, body)
	}

	eventually(t, 5*time.Second, "the link to reach the directory", func() bool {
		acct, ok := a.Directory.Account(other, second)
		return ok && acct.Home == "s-1"
	})
	now := time.Now().UTC().Truncate(time.Second)
	e.publish(listen("s-1", "s-a", now, "aurora", 6), listenAt(other, second, "t-a", now.Add(time.Minute), "aurora", 6))
	eventually(t, 15*time.Second, "the offer from the fan's one index", func() bool {
		offers, err := a.Store.Offers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return len(offers) == 1 && offers[0].FanID.String() == fanID && offers[0].EventID == other+"/t-a"
	})
}

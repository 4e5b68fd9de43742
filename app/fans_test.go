package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/store"
)

func call(t *testing.T, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestFansRegisterConsentWithdrawAndErase(t *testing.T) {
	e := newEnv(t)
	a := e.start(func(ctx context.Context, st *store.Store) error {
		if err := seedCatalog(ctx, st, nil); err != nil {
			return err
		}
		return st.PutPartner(ctx, store.Partner{ID: "rival", Name: "Rival", APIKey: "pk_rival_key"})
	})
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	// Invalid registrations are refused with every problem listed.
	status, body := call(t, http.MethodPut, base+"/v1/users/u1", partnerKey, map[string]any{
		"profile": map[string]any{"phone": "12", "time_zone": "Nowhere/Void"},
		"consent": map[string]any{"scope": []string{"telepathy"}},
	})
	errs, _ := json.Marshal(body["errors"])
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(errs), "phone:") || !strings.Contains(string(errs), "time_zone:") ||
		!strings.Contains(string(errs), "consent.wording") || !strings.Contains(string(errs), "telepathy") {
		t.Fatalf("invalid registration: %d %s", status, errs)
	}
	if status, _ := call(t, http.MethodPut, base+"/v1/users/u1", "wrong-key", map[string]any{}); status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", status)
	}

	reg := func(user string, scope []string) uuid.UUID {
		t.Helper()
		consent := map[string]any{"wording": "Count my listening on Streamly towards presale offers."}
		if scope != nil {
			consent["scope"] = scope
		}
		status, body := call(t, http.MethodPut, base+"/v1/users/"+user, partnerKey, map[string]any{
			"profile": map[string]any{"display_name": "Ada Lovelace", "email": user + "@example.com", "time_zone": "Europe/London"},
			"consent": consent,
		})
		if status != http.StatusCreated {
			t.Fatalf("registering %s: %d %v", user, status, body)
		}
		id, err := uuid.Parse(body["fan_id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	listenOnly := reg("u1", []string{"listen"})
	erased := reg("u2", nil)

	// Another partner cannot see or touch these users.
	if status, _ := call(t, http.MethodGet, base+"/v1/users/u1", "pk_rival_key", nil); status != http.StatusNotFound {
		t.Errorf("rival partner reading u1: %d, want 404", status)
	}
	if status, _ := call(t, http.MethodDelete, base+"/v1/users/u1", "pk_rival_key", nil); status != http.StatusNotFound {
		t.Errorf("rival partner erasing u1: %d, want 404", status)
	}
	status, body = call(t, http.MethodGet, base+"/v1/users/u1", partnerKey, nil)
	if status != http.StatusOK || body["fan"].(map[string]any)["id"] != listenOnly.String() || len(body["consent_ledger"].([]any)) != 1 {
		t.Fatalf("reading u1: %d %v", status, body)
	}

	// Consent changes reach the consumer through LISTEN/NOTIFY, not the hourly refresh.
	eventually(t, 5*time.Second, "the registrations to reach the directory", func() bool {
		_, ok1 := a.Directory.Account(partnerID, "u1")
		_, ok2 := a.Directory.Account(partnerID, "u2")
		return ok1 && ok2
	})
	now := time.Now().UTC().Add(-time.Minute)
	follow := func(user, id string) (m kafka.Message) {
		v, _ := events.Encode(events.Event{ID: id, Source: partnerID, Subject: user, Type: events.TypeFollow, Time: now, Follow: &events.Follow{Performer: "aurora"}})
		return kafka.Message{Key: []byte(user), Value: v}
	}
	e.publish(listen("u1", "a1", now, "aurora", 4), follow("u1", "a2"), listen("u2", "b1", now, "aurora", 4))
	// Read counts a record before it is processed: wait for the outcome itself.
	eventually(t, 10*time.Second, "the follow outside the listen-only consent to be dropped", func() bool {
		return a.Consumer.DroppedByReason()[pipeline.DropOutOfScope] == 1
	})

	// The index explains itself (F6): the total, and the event behind each point.
	eventually(t, 10*time.Second, "the contributions to be checkpointed", func() bool {
		c, err := a.Store.Contributions(t.Context(), listenOnly, "aurora")
		return err == nil && len(c) > 0
	})
	status, body = call(t, http.MethodGet, base+"/v1/users/u1/index/aurora", partnerKey, nil)
	if status != http.StatusOK {
		t.Fatalf("explanation: %d %v", status, body)
	}
	ex := body["explanation"].(map[string]any)
	items := ex["items"].([]any)
	if ex["total"].(float64) != 4 || len(items) != 1 || items[0].(map[string]any)["event_id"] != "streamly/a1" ||
		items[0].(map[string]any)["signal"] != "streaming" {
		t.Errorf("explanation %v; want 4 streaming points from streamly/a1", ex)
	}
	if status, _ := call(t, http.MethodGet, base+"/v1/users/u1/index/aurora", "pk_rival_key", nil); status != http.StatusNotFound {
		t.Errorf("rival partner reading u1's index: %d, want 404", status)
	}

	// Withdrawal: later events about the account are dropped as unlinked.
	if status, _ := call(t, http.MethodDelete, base+"/v1/users/u1/consent?wording=stop", partnerKey, nil); status != http.StatusNoContent {
		t.Fatalf("withdrawing: %d", status)
	}
	eventually(t, 5*time.Second, "the withdrawal to reach the directory", func() bool {
		_, ok := a.Directory.Account(partnerID, "u1")
		return !ok
	})
	e.publish(listen("u1", "a3", now, "aurora", 4))
	eventually(t, 10*time.Second, "the event after withdrawal to be dropped as unlinked", func() bool {
		return a.Consumer.DroppedByReason()[pipeline.DropUnlinked] == 1
	})
	if st := a.Consumer.Stats(); st.Read != 4 || st.Applied != 2 || st.Dropped != 2 {
		t.Errorf("stats %+v; want 4 read, 2 applied, 2 dropped", st)
	}
	ledger, err := a.Store.ConsentLedger(t.Context(), listenOnly)
	if err != nil || len(ledger) != 2 || ledger[1].Action != "withdraw" || ledger[1].Wording != "stop" {
		t.Fatalf("ledger after withdrawal: %+v %v", ledger, err)
	}

	// Erasure removes the fan everywhere, including the partition's durable state.
	if status, _ := call(t, http.MethodDelete, base+"/v1/users/u2", partnerKey, nil); status != http.StatusNoContent {
		t.Fatalf("erasing: %d", status)
	}
	if status, _ := call(t, http.MethodGet, base+"/v1/users/u2", partnerKey, nil); status != http.StatusNotFound {
		t.Fatalf("reading an erased fan: %d", status)
	}
	var rows int
	if err := a.Store.Pool().QueryRow(t.Context(), `SELECT
			(SELECT count(*) FROM fans WHERE id = $1) + (SELECT count(*) FROM linked_accounts WHERE fan_id = $1) +
			(SELECT count(*) FROM offers WHERE fan_id = $1) + (SELECT count(*) FROM contributions WHERE fan_id = $1) +
			(SELECT count(*) FROM consent_ledger WHERE fan_id = $1 AND (partner_user_id <> '' OR wording <> ''))`, erased).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d rows still hold the erased fan's personal data", rows)
	}
	eventually(t, 10*time.Second, "the partition owner to drop the erased fan from durable state", func() bool {
		var data [][]byte
		rows, err := a.Store.Pool().Query(t.Context(), `SELECT data FROM partition_state`)
		if err != nil {
			return false
		}
		for rows.Next() {
			var b []byte
			_ = rows.Scan(&b)
			data = append(data, b)
		}
		rows.Close()
		for _, b := range data {
			if bytes.Contains(b, erased[:]) {
				return false
			}
		}
		return len(data) > 0
	})
}

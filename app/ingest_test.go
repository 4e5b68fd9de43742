package app_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

// partnerClient posts batches the way the README tells partners to.
type partnerClient struct {
	t            *testing.T
	base, key    string
	secret       string
	clockSkew    time.Duration
	contentType  string
	badSignature bool
}

type posted struct {
	status int
	header http.Header
	body   []byte
}

func (c *partnerClient) post(idemKey string, body []byte) posted {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(c.t.Context(), http.MethodPost, c.base+"/v1/events", bytes.NewReader(body))
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("Content-Type", cmpOr(c.contentType, "application/cloudevents-batch+json"))
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	ts := strconv.FormatInt(time.Now().Add(c.clockSkew).Unix(), 10)
	mac := hmac.New(sha256.New, []byte(c.secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if c.badSignature {
		mac.Write([]byte("tampered"))
	}
	req.Header.Set("Crescendo-Timestamp", ts)
	req.Header.Set("Crescendo-Signature", "v0=ignored, v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return posted{resp.StatusCode, resp.Header, b}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func batchOf(evs ...map[string]any) []byte {
	b, err := json.Marshal(evs)
	if err != nil {
		panic(err)
	}
	return b
}

func listenEvent(id, source, user string, at time.Time, minutes int) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": source, "subject": user, "type": "listen",
		"time": at.UTC().Format(time.RFC3339), "datacontenttype": "application/json",
		"data": map[string]any{"performer": "aurora", "track": "t", "ms_played": minutes * 60_000, "device": "mobile", "country": "GB"},
	}
}

// F23: partners without Kafka post signed batches; accepted events take the
// same path as produced ones, a retried batch is produced once, and each
// partner is held to its rate.
func TestPartnerHTTPIngestion(t *testing.T) {
	e := newEnv(t)
	e.settings.IngestRate = 20 // events per second; the burst is a full batch of 500
	e.settings.IngestReplayWindow = time.Minute
	fans := []fan{
		{id: uuid.New(), user: "h-1", email: "h1@example.com"},
		{id: uuid.New(), user: "h-2", email: "h2@example.com"},
		{id: uuid.New(), user: "h-3", email: "h3@example.com"},
	}
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, fans) })
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	// The signing secret, made with the partner's key and shown once.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/events/signing-secret", nil)
	req.Header.Set("Authorization", "Bearer "+partnerKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var made struct{ Secret string }
	_ = json.NewDecoder(resp.Body).Decode(&made)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.HasPrefix(made.Secret, "isk_") {
		t.Fatalf("signing secret: %d %q", resp.StatusCode, made.Secret)
	}

	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var evs []map[string]any
	for i := range 4 {
		for _, f := range fans {
			evs = append(evs, listenEvent(fmt.Sprintf("%s-%d", f.user, i), partnerID, f.user, now.Add(time.Duration(i)*time.Minute), 3))
		}
	}
	impostor := listenEvent("x-1", "otherapp", "h-1", now, 30)
	incomplete := listenEvent("x-2", partnerID, "h-1", now, 30)
	delete(incomplete, "subject")
	repeat := listenEvent("h-1-0", partnerID, "h-1", now, 30)
	body := batchOf(append(evs, impostor, incomplete, repeat)...)

	good := &partnerClient{t: t, base: base, key: partnerKey, secret: made.Secret}
	for name, c := range map[string]struct {
		client *partnerClient
		key    string
		body   []byte
		want   int
	}{
		"no partner key":         {&partnerClient{t: t, base: base, secret: made.Secret}, "k0", body, 401},
		"another key":            {&partnerClient{t: t, base: base, key: "pk_nobody", secret: made.Secret}, "k0", body, 401},
		"the wrong secret":       {&partnerClient{t: t, base: base, key: partnerKey, secret: "isk_guess"}, "k0", body, 401},
		"a tampered body":        {&partnerClient{t: t, base: base, key: partnerKey, secret: made.Secret, badSignature: true}, "k0", body, 401},
		"a stale timestamp":      {&partnerClient{t: t, base: base, key: partnerKey, secret: made.Secret, clockSkew: -2 * time.Minute}, "k0", body, 401},
		"a single event":         {&partnerClient{t: t, base: base, key: partnerKey, secret: made.Secret, contentType: "application/cloudevents+json"}, "k0", body, 415},
		"no idempotency key":     {good, "", body, 400},
		"an object, not a batch": {good, "k0", []byte(`{"specversion":"1.0"}`), 400},
	} {
		if got := c.client.post(c.key, c.body); got.status != c.want {
			t.Errorf("with %s: status %d %s, want %d", name, got.status, got.body, c.want)
		}
	}

	first := good.post("batch-1", body)
	if first.status != 200 {
		t.Fatalf("batch: %d %s", first.status, first.body)
	}
	var res struct {
		Accepted, Rejected int
		Results            []struct {
			Index          int
			ID, Status     string
			Reason, Detail string
		}
	}
	if err := json.Unmarshal(first.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 12 || res.Rejected != 3 || len(res.Results) != 15 {
		t.Fatalf("answer %s", first.body)
	}
	for i, want := range []string{"source_mismatch", "missing_field", "duplicate_id"} {
		if r := res.Results[12+i]; r.Index != 12+i || r.Status != "rejected" || r.Reason != want || r.Detail == "" {
			t.Errorf("result %d: %+v, want rejected for %s", 12+i, r, want)
		}
	}
	for _, r := range res.Results[:12] {
		if r.Status != "accepted" || r.Reason != "" {
			t.Errorf("result %+v, want accepted", r)
		}
	}

	// The retry gets the same answer and produces nothing; another body under the key is refused.
	again := good.post("batch-1", body)
	if again.status != 200 || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d replayed=%q %s", again.status, again.header.Get("Idempotent-Replayed"), again.body)
	}
	if got := good.post("batch-1", batchOf(evs[0])); got.status != 422 {
		t.Errorf("another body under a used key: %d %s", got.status, got.body)
	}

	// The accepted events are in the topic once, each in its fan's home
	// partition (nothing routed), and counted like produced ones.
	eventually(t, 30*time.Second, "12 events applied and 3 offers", func() bool {
		sum, err := a.Store.SummarizeOffers(t.Context())
		return err == nil && a.Consumer.Stats().Applied == 12 && sum.ByStatus[store.OfferIssued]+sum.ByStatus[store.OfferDelivered] == 3
	})
	var records int64
	for _, n := range lastOffsets(t, e.brokers) {
		records += n
	}
	if st := a.Consumer.Stats(); records != 12 || st.Routed != 0 || st.DeadLettered != 0 {
		t.Errorf("topic holds %d records, want 12; stats %+v", records, st)
	}

	// Over the rate: the bucket (500) has about 485 left; 400 pass, 200 more do not.
	var big []map[string]any
	for i := range 400 {
		big = append(big, listenEvent(fmt.Sprintf("b-%d", i), partnerID, "stranger", now, 1))
	}
	if got := good.post("batch-2", batchOf(big...)); got.status != 200 {
		t.Fatalf("batch of 400: %d %s", got.status, got.body)
	}
	limited := good.post("batch-3", batchOf(big[:200]...))
	retry, _ := strconv.Atoi(limited.header.Get("Retry-After"))
	if limited.status != 429 || retry < 1 || retry > 10 {
		t.Errorf("over the rate: %d, Retry-After %q; want 429 and about 6 s", limited.status, limited.header.Get("Retry-After"))
	}
	fams := scrape(t, base)
	if v, _ := value(fams, "crescendo_ingest_events_total", "partner", partnerID, "outcome", "accepted"); v != 412 {
		t.Errorf("crescendo_ingest_events_total accepted = %v, want 412", v)
	}
	if v, _ := value(fams, "crescendo_ingest_events_total", "partner", partnerID, "outcome", "source_mismatch"); v != 1 {
		t.Errorf("crescendo_ingest_events_total source_mismatch = %v, want 1", v)
	}
}

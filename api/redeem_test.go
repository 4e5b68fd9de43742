package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// shop is a server whose partner "streamly" (key pk_streamly) has n users,
// user-<i>, each the fan of one offer of rule "r" tier 1 sent at sent. Its
// signer has rotated from key "old" to key "new"; tokens holds each offer's
// token, half signed with each key.
type shop struct {
	url    string
	ctx    context.Context
	client *http.Client
	store  *store.Store
	now    atomic.Int64 // the API's clock, in Unix nanoseconds
	sent   time.Time
	ids    []uuid.UUID
	tokens []string
	keys   map[string][]byte
}

func newShop(t *testing.T, n int) *shop {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: pgtemp.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	sh := &shop{ctx: ctx, store: st, sent: time.Now().UTC().Truncate(time.Millisecond), keys: map[string][]byte{
		"old": bytes.Repeat([]byte{1}, 32), "new": bytes.Repeat([]byte{2}, 32),
	}}
	sh.now.Store(sh.sent.UnixNano())
	for _, err := range []error{
		st.PutPartner(ctx, store.Partner{ID: "streamly", Name: "Streamly", APIKey: "pk_streamly"}),
		st.PutPartner(ctx, store.Partner{ID: "other", Name: "Other", APIKey: "pk_other"}),
		st.PutPerformer(ctx, "perf", "Aurora Lane"),
		st.PutShow(ctx, store.Show{ID: "show", PerformerID: "perf", Name: "Aurora Lane at the Roundhouse",
			StartsAt: sh.sent.Add(30 * 24 * time.Hour), VenueName: "Roundhouse", VenueLat: 51.54, VenueLon: -0.15}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutRule(ctx, offers.Rule{ID: "r", PerformerID: "perf", ShowID: "show",
		Tiers:    []offers.Tier{{Threshold: 10, Perks: []string{"presale"}}},
		Channels: []offers.Channel{offers.ChannelSMS}, Lifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	bulk := make([]store.BulkFan, n)
	fans := make([]uuid.UUID, n)
	for i := range n {
		fans[i] = uuid.New()
		sh.ids = append(sh.ids, uuid.New())
		bulk[i] = store.BulkFan{Fan: store.Fan{ID: fans[i], TimeZone: "UTC"}, PartnerUserID: fmt.Sprint("user-", i)}
	}
	if err := st.BulkLoadFans(ctx, "streamly", bulk); err != nil {
		t.Fatal(err)
	}
	expires := sh.sent.Add(time.Hour)
	if _, err := st.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, status, issued_at, expires_at, delivered_at)
		SELECT o, f, 'r', 1, 1, 'perf', 'show', '{presale,"Floor A"}', 30, 'e', 0, 'delivered', $3, $4, $3
		FROM unnest($1::uuid[], $2::uuid[]) AS t(o, f)`, sh.ids, fans, sh.sent, expires); err != nil {
		t.Fatal(err)
	}
	before := sh.signer(t, "old")
	for i, id := range sh.ids {
		s := before
		if i%2 == 1 {
			s = sh.signer(t, "new")
		}
		sh.tokens = append(sh.tokens, s.Token(id, expires))
	}
	h, err := api.New(api.Config{
		Partners: st, Push: push.NewHub(), Redemptions: st, Signer: sh.signer(t, "new"),
		Clock:  func() time.Time { return time.Unix(0, sh.now.Load()) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	sh.url = srv.URL
	sh.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(sh.client.CloseIdleConnections)
	return sh
}

// signer signs with key current and verifies with every key of the shop.
func (sh *shop) signer(t *testing.T, current string) *offers.Signer {
	t.Helper()
	s, err := offers.NewSigner(current, sh.keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (sh *shop) at(d time.Duration) { sh.now.Store(sh.sent.Add(d).UnixNano()) }

// answer is a response: its status, its problem code if any, and its body.
type answer struct {
	status int
	code   string
	body   map[string]any
}

// call makes a request; it does not fail the test, so goroutines may use it.
func (sh *shop) call(method, path, key string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(sh.ctx, method, sh.url+path, rd)
	if err != nil {
		return answer{}, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := sh.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		return a, fmt.Errorf("%s %s: %d with a body that is not JSON: %w", method, path, resp.StatusCode, err)
	}
	a.code, _ = a.body["code"].(string)
	return a, nil
}

func (sh *shop) redeem(i int, token string) (answer, error) {
	return sh.call(http.MethodPost, "/v1/offers/redeem", "pk_streamly", map[string]string{"token": token, "user_id": fmt.Sprint("user-", i)})
}

// expect makes a request and checks its status and code.
func (sh *shop) expect(t *testing.T, status int, code, method, path, key string, body any) answer {
	t.Helper()
	a, err := sh.call(method, path, key, body)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != status || a.code != code {
		t.Fatalf("%s %s: %d %q %v, want %d %q", method, path, a.status, a.code, a.body, status, code)
	}
	return a
}

// concurrently runs n redemptions at once and counts their answers by status and code.
func concurrently(t *testing.T, n int, redeem func(i int) (answer, error)) map[string]int {
	t.Helper()
	answers := make([]answer, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i], errs[i] = redeem(i)
		})
	}
	close(start)
	wg.Wait()
	counts := map[string]int{}
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		counts[fmt.Sprint(a.status, " ", a.code)]++
	}
	return counts
}

func TestRedeemOverHTTPTakesExactlyTheInventory(t *testing.T) {
	sh := newShop(t, 200)
	if err := sh.store.SetTierInventory(t.Context(), "r", 1, 50); err != nil {
		t.Fatal(err)
	}
	sh.at(time.Minute)
	counts := concurrently(t, 200, func(i int) (answer, error) { return sh.redeem(i, sh.tokens[i]) })
	if counts["200 "] != 50 || counts["409 sold_out"] != 150 || len(counts) != 2 {
		t.Fatalf("answers %v, want 50 × 200 and 150 × 409 sold_out", counts)
	}
	inv, err := sh.store.TierInventories(t.Context(), "r")
	if err != nil || len(inv) != 1 || inv[0].Redeemed != 50 {
		t.Fatalf("inventory %+v, %v", inv, err)
	}
}

func TestRedeemOverHTTPOneTokenOnce(t *testing.T) {
	sh := newShop(t, 1)
	sh.at(time.Minute)
	counts := concurrently(t, 100, func(int) (answer, error) { return sh.redeem(0, sh.tokens[0]) })
	if counts["200 "] != 1 || counts["409 already_redeemed"] != 99 || len(counts) != 2 {
		t.Fatalf("answers %v, want 1 × 200 and 99 × 409 already_redeemed", counts)
	}
}

func TestRedeemRefusesEachBadRequestWithItsCode(t *testing.T) {
	sh := newShop(t, 4)
	sh.at(time.Minute)
	token := sh.tokens[0]
	keyID, rest, _ := strings.Cut(token, ".")
	post := func(status int, code, key string, body any) {
		t.Helper()
		sh.expect(t, status, code, http.MethodPost, "/v1/offers/redeem", key, body)
	}
	post(http.StatusBadRequest, "token_malformed", "pk_streamly", map[string]string{"token": "not-a-token", "user_id": "user-0"})
	post(http.StatusUnauthorized, "token_unknown_key", "pk_streamly", map[string]string{"token": "gone." + rest, "user_id": "user-0"})
	post(http.StatusUnauthorized, "token_forged", "pk_streamly", map[string]string{"token": forge(token), "user_id": "user-0"})
	if keyID != "old" {
		t.Fatalf("token 0 is signed with %q, want the old key", keyID)
	}
	// Another user's offer and an offer that does not exist answer alike.
	post(http.StatusNotFound, "offer_not_found", "pk_streamly", map[string]string{"token": sh.tokens[1], "user_id": "user-0"})
	s := sh.signer(t, "new")
	post(http.StatusNotFound, "offer_not_found", "pk_streamly", map[string]string{"token": s.Token(uuid.New(), sh.sent.Add(time.Hour)), "user_id": "user-0"})
	// A partner reaches fans only through its own users.
	post(http.StatusNotFound, "user_not_found", "pk_other", map[string]string{"token": token, "user_id": "user-0"})
	post(http.StatusUnauthorized, "", "", map[string]string{"token": token, "user_id": "user-0"})
	post(http.StatusUnprocessableEntity, "", "pk_streamly", map[string]string{"user_id": "user-0"})

	// Signed with the key rotated out of signing: still redeems, once.
	a := sh.expect(t, http.StatusOK, "", http.MethodPost, "/v1/offers/redeem", "pk_streamly", map[string]string{"token": token, "user_id": "user-0"})
	if a.body["offer_id"] != sh.ids[0].String() || a.body["tier"] != 1.0 || a.body["show_id"] != "show" ||
		fmt.Sprint(a.body["perks"]) != "[presale Floor A]" || a.body["sent_to_redeemed_ms"] != 60000.0 {
		t.Errorf("redemption %v", a.body)
	}
	post(http.StatusConflict, "already_redeemed", "pk_streamly", map[string]string{"token": token, "user_id": "user-0"})

	// Past the termination time the token carries.
	sh.at(time.Hour)
	post(http.StatusGone, "offer_expired", "pk_streamly", map[string]string{"token": sh.tokens[1], "user_id": "user-1"})
	if _, err := sh.store.Pool().Exec(t.Context(), `UPDATE offers SET status = 'failed' WHERE id = $1`, sh.ids[2]); err != nil {
		t.Fatal(err)
	}
	sh.at(time.Minute)
	post(http.StatusGone, "offer_void", "pk_streamly", map[string]string{"token": sh.tokens[2], "user_id": "user-2"})
}

func TestOfferLinkRecordsFirstOpenAndReactionTimes(t *testing.T) {
	sh := newShop(t, 2)
	link := "/o/" + sh.tokens[1]
	sh.at(3 * time.Second)
	a := sh.expect(t, http.StatusOK, "", http.MethodGet, link, "", nil)
	opened := sh.sent.Add(3 * time.Second).Format(time.RFC3339Nano)
	if a.body["opened_at"] != opened || a.body["status"] != "delivered" || a.body["show"] != "Aurora Lane at the Roundhouse" ||
		a.body["performer"] != "Aurora Lane" || a.body["expires_at"] != sh.sent.Add(time.Hour).Format(time.RFC3339Nano) {
		t.Fatalf("first open %v", a.body)
	}
	sh.at(5 * time.Second)
	if a := sh.expect(t, http.StatusOK, "", http.MethodGet, link, "", nil); a.body["opened_at"] != opened {
		t.Errorf("second open moved opened_at: %v, want %s", a.body["opened_at"], opened)
	}
	sh.at(10 * time.Second)
	a = sh.expect(t, http.StatusOK, "", http.MethodPost, "/v1/offers/redeem", "pk_streamly", map[string]string{"token": sh.tokens[1], "user_id": "user-1"})
	if a.body["sent_to_opened_ms"] != 3000.0 || a.body["sent_to_redeemed_ms"] != 10000.0 || a.body["opened_at"] != opened {
		t.Errorf("redemption %v, want reactions of 3000 and 10000 ms", a.body)
	}
	if a := sh.expect(t, http.StatusOK, "", http.MethodGet, link, "", nil); a.body["status"] != "redeemed" || a.body["redeemed_at"] == nil {
		t.Errorf("open after redemption %v", a.body)
	}
	reds, err := sh.store.Redemptions(t.Context(), mustFan(t, sh, "user-1"))
	if err != nil || len(reds) != 1 || reds[0].SentToRedeemed != 10*time.Second || reds[0].PartnerID != "streamly" {
		t.Errorf("stored redemptions %+v, %v", reds, err)
	}

	sh.expect(t, http.StatusUnauthorized, "token_forged", http.MethodGet, "/o/"+forge(sh.tokens[1]), "", nil)
	sh.expect(t, http.StatusBadRequest, "token_malformed", http.MethodGet, "/o/nonsense", "", nil)
	sh.at(time.Hour)
	sh.expect(t, http.StatusGone, "offer_expired", http.MethodGet, "/o/"+sh.tokens[0], "", nil)
	// An expired offer's open is no reaction: it is not recorded.
	if l, err := sh.store.MarkOpened(t.Context(), sh.ids[0], sh.sent.Add(2*time.Hour)); err != nil || l.OpenedAt != nil {
		t.Errorf("expired offer opened: %+v, %v", l, err)
	}
}

// forge changes a token's signature.
func forge(token string) string {
	last := "A"
	if strings.HasSuffix(token, last) {
		last = "B"
	}
	return token[:len(token)-1] + last
}

func mustFan(t *testing.T, sh *shop, user string) uuid.UUID {
	t.Helper()
	fan, ok, err := sh.store.FanByAccount(t.Context(), "streamly", user)
	if err != nil || !ok {
		t.Fatalf("fan of %s: %v %v", user, ok, err)
	}
	return fan
}

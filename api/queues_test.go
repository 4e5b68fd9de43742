package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/queue"
	"github.com/crescendo-hq/crescendo/store"
)

// queueNow is the clock of the queue tests' server.
var queueNow = time.Date(2031, 3, 1, 10, 0, 0, 0, time.UTC)

// newBoxOffice is newTenants with the queues served, shows sa (of org a's
// performer pa) and sb (of b's pb) a month after queueNow, and streamly users
// human0…human2, bot0 (automated) and tier1 (with a tier-1 offer for sa).
func newBoxOffice(t *testing.T) *tenants {
	t.Helper()
	te := newTenants(t)
	ctx := t.Context()
	st := te.store
	for _, org := range []string{"a", "b"} {
		if err := st.PutShow(ctx, store.Show{ID: "s" + org, PerformerID: "p" + org, Name: "Show " + org,
			StartsAt: queueNow.AddDate(0, 1, 0), VenueName: "V", VenueLat: 1, VenueLon: 2}); err != nil {
			t.Fatal(err)
		}
	}
	fans := map[string]uuid.UUID{}
	var bulk []store.BulkFan
	for _, user := range []string{"human0", "human1", "human2", "bot0", "tier1"} {
		fans[user] = uuid.New()
		bulk = append(bulk, store.BulkFan{Fan: store.Fan{ID: fans[user], TimeZone: "UTC"}, PartnerUserID: user})
	}
	if err := st.BulkLoadFans(ctx, "streamly", bulk); err != nil {
		t.Fatal(err)
	}
	if err := st.SetFanClassification(ctx, fans["bot0"], queue.Automated, "reacts in 40 ms"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO rules (id, performer_id, show_id, tiers, channels, lifetime_seconds)
		VALUES ('ra', 'pa', 'sa', '[{"threshold": 10}]', '{email}', 3600)`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, status, issued_at, expires_at)
		VALUES ($1, $2, 'ra', 1, 1, 'pa', 'sa', '{presale}', 50, 'e', 0, 'delivered', $3, $4)`,
		uuid.New(), fans["tier1"], queueNow.Add(-time.Hour), queueNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{
		Partners: st, Marketers: st, Queues: st, Push: push.NewHub(),
		Clock:  func() time.Time { return queueNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	box := *te
	box.url = srv.URL
	return &box
}

// code returns a problem body's code.
func (r reply) code(t *testing.T) string {
	t.Helper()
	c, _ := r.json(t)["code"].(string)
	return c
}

func TestSalesAreSetByTheShowsOrganization(t *testing.T) {
	te := newBoxOffice(t)
	aMkt, aView := te.a[store.RoleMarketer], te.a[store.RoleViewer]
	sale := map[string]any{
		"opens_at": queueNow, "batch_size": 2, "batch_interval": "30s", "automated": "relegate",
		"sections": map[string]string{"1": "Lower bowl", "0": "General"},
	}
	r := te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/shows/sa/sale", aView, nil)
	if r.code(t) != "no_sale" {
		t.Errorf("no sale yet: %s", r.body)
	}
	te.expect(t, http.StatusForbidden, http.MethodPut, "/v1/shows/sa/sale", aView, sale)
	te.expect(t, http.StatusUnauthorized, http.MethodPut, "/v1/shows/sa/sale", "pk_partner", sale)
	r = te.expect(t, http.StatusCreated, http.MethodPut, "/v1/shows/sa/sale", aMkt, sale)
	if got := r.json(t); got["batch_interval"] != "30s" || got["automated"] != "relegate" || got["batch_size"] != 2.0 {
		t.Errorf("created sale %s", r.body)
	}
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/shows/sa/sale", aMkt, sale)

	// Organization b cannot tell a's show from one that does not exist.
	for _, path := range []string{"/v1/shows/sa/sale", "/v1/shows/nowhere/sale"} {
		te.expect(t, http.StatusNotFound, http.MethodGet, path, te.bAdm, nil)
		te.expect(t, http.StatusNotFound, http.MethodPut, path, te.bAdm, sale)
	}
	te.expect(t, http.StatusCreated, http.MethodPut, "/v1/shows/sb/sale", te.bAdm, sale)
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/shows/sb/sale", aView, nil)

	r = te.expect(t, http.StatusUnprocessableEntity, http.MethodPut, "/v1/shows/sa/sale", aMkt, map[string]any{
		"batch_size": 0, "batch_interval": "soon", "automated": "ban", "sections": map[string]string{"vip": "Box", "2": ""},
	})
	want := []string{"batch_interval", `sections["vip"]`, "batch_size", "automated"}
	if got := r.problems(t); !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}
	te.expect(t, http.StatusBadRequest, http.MethodPut, "/v1/shows/sa/sale", aMkt, map[string]any{"batch_sise": 1})
}

func TestPartnersQueueTheirUsers(t *testing.T) {
	te := newBoxOffice(t)
	aMkt, aView := te.a[store.RoleMarketer], te.a[store.RoleViewer]
	const key = "pk_partner"
	join := func(status int, user string) reply {
		t.Helper()
		return te.expect(t, status, http.MethodPost, "/v1/shows/sa/queue", key, map[string]string{"user_id": user})
	}
	if r := join(http.StatusNotFound, "human0"); r.code(t) != "no_sale" {
		t.Errorf("before the sale: %s", r.body)
	}
	te.expect(t, http.StatusCreated, http.MethodPut, "/v1/shows/sa/sale", aMkt, map[string]any{
		"opens_at": queueNow.Add(time.Minute), "batch_size": 2, "batch_interval": "1m",
		"sections": map[string]string{"1": "Lower bowl", "0": "General"},
	})
	if r := join(http.StatusConflict, "human0"); r.code(t) != "sale_not_open" {
		t.Errorf("before it opens: %s", r.body)
	}
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/shows/sa/sale", aMkt, map[string]any{
		"opens_at": queueNow, "batch_size": 2, "batch_interval": "1m",
		"sections": map[string]string{"1": "Lower bowl", "0": "General"},
	})
	te.expect(t, http.StatusUnauthorized, http.MethodPost, "/v1/shows/sa/queue", "", map[string]string{"user_id": "human0"})
	if r := join(http.StatusNotFound, "stranger"); r.code(t) != "unknown_user" {
		t.Errorf("unlinked user: %s", r.body)
	}
	join(http.StatusUnprocessableEntity, "")

	// The relegated account joins first and still waits behind the general queue.
	first := join(http.StatusCreated, "bot0").json(t)
	if first["queue"] != "relegated" || first["position"] != 1.0 || first["section"] != "General" {
		t.Errorf("relegated fan: %v", first)
	}
	join(http.StatusCreated, "human0")
	r := join(http.StatusCreated, "human1")
	if got := r.json(t); got["queue"] != "general" || got["position"] != 2.0 || got["ahead"] != 1.0 ||
		r.header.Get("Location") != "/v1/shows/sa/queue/human1" {
		t.Errorf("second general fan: %v", got)
	}
	if got := join(http.StatusCreated, "tier1").json(t); got["queue"] != "tier-1" || got["position"] != 1.0 || got["section"] != "Lower bowl" {
		t.Errorf("tier-1 fan: %v", got)
	}
	again := join(http.StatusOK, "human1").json(t)
	if again["position"] != 3.0 {
		t.Errorf("joining again: %v", again)
	}
	bot := te.expect(t, http.StatusOK, http.MethodGet, "/v1/shows/sa/queue/bot0", key, nil).json(t)
	if bot["position"] != 4.0 || bot["ahead"] != 3.0 || bot["admitted"] != false {
		t.Errorf("relegated fan after the others: %v", bot)
	}
	if r := te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/shows/sa/queue/human2", key, nil); r.code(t) != "not_in_queue" {
		t.Errorf("status of a user who has not joined: %s", r.body)
	}

	// The first batch admits the tier-1 fan and the first general fan.
	if n, err := te.store.AdmitNextBatch(t.Context(), "sa", queueNow); err != nil || n != 2 {
		t.Fatalf("batch: %d %v", n, err)
	}
	got := te.expect(t, http.StatusOK, http.MethodGet, "/v1/shows/sa/queue/human0", key, nil).json(t)
	if got["admitted"] != true || got["position"] != 0.0 || got["section"] != "General" || got["admitted_at"] == nil {
		t.Errorf("admitted fan: %v", got)
	}
	sale := te.expect(t, http.StatusOK, http.MethodGet, "/v1/shows/sa/sale", aView, nil).json(t)
	if sale["waiting"] != 2.0 || sale["admitted"] != 2.0 {
		t.Errorf("sale counts: %v", sale)
	}
	queues, _ := sale["queues"].([]any)
	var names []string
	for _, q := range queues {
		names = append(names, q.(map[string]any)["queue"].(string))
	}
	if !slices.Equal(names, []string{"tier-1", "general", "relegated"}) {
		t.Errorf("queues %v", names)
	}

	// A sale that bars automated accounts refuses them with a code.
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/shows/sa/sale", aMkt, map[string]any{
		"opens_at": queueNow, "batch_size": 2, "batch_interval": "1m", "automated": "bar",
	})
	te.expect(t, http.StatusCreated, http.MethodPut, "/v1/shows/sb/sale", te.bAdm, map[string]any{
		"opens_at": queueNow, "batch_size": 2, "batch_interval": "1m", "automated": "bar",
	})
	r = te.expect(t, http.StatusForbidden, http.MethodPost, "/v1/shows/sb/queue", key, map[string]string{"user_id": "bot0"})
	if r.code(t) != "automated_barred" {
		t.Errorf("barred account: %s", r.body)
	}
	// The offer was for show sa: at sb the tier-1 fan is general.
	if got := te.expect(t, http.StatusCreated, http.MethodPost, "/v1/shows/sb/queue", key,
		map[string]string{"user_id": "tier1"}).json(t); got["queue"] != "general" {
		t.Errorf("tier-1 fan at another show: %v", got)
	}
}

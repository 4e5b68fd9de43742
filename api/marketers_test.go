package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// tenants is a server with two organizations, a and b, each owning one
// performer (pa, pb), and a token per role for a and an admin token for b.
type tenants struct {
	url   string
	store *store.Store
	a     map[store.Role]string
	bAdm  string
}

func newTenants(t *testing.T) *tenants {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: pgtemp.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	te := &tenants{store: st, a: map[store.Role]string{}}
	for _, org := range []string{"a", "b"} {
		if _, err := st.CreateOrganization(ctx, org, "Org "+org); err != nil {
			t.Fatal(err)
		}
		if err := st.PutPerformer(ctx, "p"+org, "Performer "+strings.ToUpper(org)); err != nil {
			t.Fatal(err)
		}
		if err := st.AssignPerformer(ctx, org, "p"+org); err != nil {
			t.Fatal(err)
		}
	}
	for _, role := range []store.Role{store.RoleAdmin, store.RoleMarketer, store.RoleViewer} {
		if _, te.a[role], err = st.CreateToken(ctx, "a", role, string(role)); err != nil {
			t.Fatal(err)
		}
	}
	if _, te.bAdm, err = st.CreateToken(ctx, "b", store.RoleAdmin, "b admin"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPartner(ctx, store.Partner{ID: "streamly", Name: "Streamly", APIKey: "pk_partner"}); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{
		Partners: st, Marketers: st, Push: push.NewHub(), Bots: st,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	te.url = srv.URL
	return te
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return m
}

// problems returns the field of each problem of a 422 body.
func (r reply) problems(t *testing.T) []string {
	t.Helper()
	var body struct {
		Problems []struct{ Field, Reason string }
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, p := range body.Problems {
		if p.Reason == "" {
			t.Errorf("problem %q has no reason", p.Field)
		}
		fields = append(fields, p.Field)
	}
	return fields
}

func (te *tenants) do(t *testing.T, method, path, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, te.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (te *tenants) expect(t *testing.T, want int, method, path, token string, body any) reply {
	t.Helper()
	r := te.do(t, method, path, token, body)
	if r.status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r
}

func TestMarketerTokensNeedTheRightRoleAndOrganization(t *testing.T) {
	te := newTenants(t)
	aMkt, aView, aAdm := te.a[store.RoleMarketer], te.a[store.RoleViewer], te.a[store.RoleAdmin]

	// No token, an unknown one, a partner key: 401 with a Bearer challenge.
	for _, tok := range []string{"", "cr_unknown", "pk_partner"} {
		r := te.do(t, http.MethodGet, "/v1/profiles", tok, nil)
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("token %q: %d, WWW-Authenticate %q", tok, r.status, r.header.Get("WWW-Authenticate"))
		}
	}

	// a's marketer creates a profile; a's viewer reads it.
	secret := map[string]any{"weights": map[string]any{"follow": 4}, "id": "ignored"}
	r := te.expect(t, http.StatusCreated, http.MethodPut, "/v1/profiles/secret", aMkt, secret)
	if got := r.json(t); got["id"] != "secret" || r.header.Get("Location") != "/v1/profiles/secret" {
		t.Fatalf("created profile: %v, Location %q", got["id"], r.header.Get("Location"))
	}
	r = te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles/secret", aView, nil)
	var prof scoring.Profile
	if err := json.Unmarshal(r.body, &prof); err != nil {
		t.Fatal(err)
	}
	// Left-out fields take the default's values; the body's id loses to the path's.
	def := scoring.DefaultProfile()
	if prof.ID != "secret" || prof.Weights.Follow != 4 || prof.Weights.Affinity != 1 || !slices.Equal(prof.AffinityWords, def.AffinityWords) {
		t.Fatalf("stored profile: %+v", prof)
	}
	// What GET returns goes back through PUT unchanged.
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/profiles/secret", aMkt, prof)
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/performers/pa/scoring", aMkt,
		map[string]any{"aliases": []string{"PA"}, "profile_id": "secret"})

	// b cannot tell a's profile or performer from one that does not exist.
	bAdm := te.bAdm
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/profiles/secret", bAdm, nil)
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/profiles/a%2Fsecret", bAdm, nil)
	te.expect(t, http.StatusNotFound, http.MethodDelete, "/v1/profiles/secret", bAdm, nil)
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/performers/pa/scoring", bAdm, nil)
	te.expect(t, http.StatusNotFound, http.MethodPut, "/v1/performers/pa/scoring", bAdm, map[string]any{"profile_id": ""})
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/performers/nobody/scoring", bAdm, nil)
	// b's PUT of the same name makes b's own profile and leaves a's alone.
	te.expect(t, http.StatusCreated, http.MethodPut, "/v1/profiles/secret", bAdm, map[string]any{"weights": map[string]any{"follow": 9}})
	r = te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles", bAdm, nil)
	if s := string(r.body); !strings.Contains(s, `"follow":9`) || strings.Contains(s, `"follow":4`) {
		t.Fatalf("b's list shows a's profile: %s", s)
	}
	// b cannot point its performer at a's profile either.
	r = te.expect(t, http.StatusUnprocessableEntity, http.MethodPut, "/v1/performers/pb/scoring", bAdm, map[string]any{"profile_id": "a/secret"})
	if got := r.problems(t); !slices.Equal(got, []string{"profile_id"}) {
		t.Fatalf("problems: %v", got)
	}
	r = te.expect(t, http.StatusOK, http.MethodGet, "/v1/performers/pa/scoring", aView, nil)
	if got := r.json(t); got["profile_id"] != "secret" || got["name"] != "Performer A" {
		t.Fatalf("a's performer after b's attempts: %v", got)
	}

	// A viewer reads and never writes; a marketer does not manage tokens.
	te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles", aView, nil)
	te.expect(t, http.StatusOK, http.MethodGet, "/v1/performers/pa/scoring", aView, nil)
	for _, c := range []struct {
		method, path, token string
		body                any
	}{
		{http.MethodPut, "/v1/profiles/secret", aView, map[string]any{}},
		{http.MethodPut, "/v1/profiles/new", aView, map[string]any{}},
		{http.MethodDelete, "/v1/profiles/secret", aView, nil},
		{http.MethodPut, "/v1/performers/pa/scoring", aView, map[string]any{}},
		{http.MethodGet, "/v1/tokens", aView, nil},
		{http.MethodPost, "/v1/tokens", aMkt, map[string]any{"role": "admin", "name": "escalate"}},
		{http.MethodGet, "/v1/tokens", aMkt, nil},
	} {
		te.expect(t, http.StatusForbidden, c.method, c.path, c.token, c.body)
	}
	if _, err := te.store.OrgProfileByID(t.Context(), "a", "new"); err == nil {
		t.Fatal("a viewer's PUT created a profile")
	}

	// Built-in profiles are readable by all and changeable by none.
	te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles/default", aView, nil)
	te.expect(t, http.StatusForbidden, http.MethodPut, "/v1/profiles/default", aAdm, map[string]any{})
	te.expect(t, http.StatusForbidden, http.MethodDelete, "/v1/profiles/default", aAdm, nil)
	// A profile a performer uses stays until the performer moves off it.
	te.expect(t, http.StatusConflict, http.MethodDelete, "/v1/profiles/secret", aMkt, nil)
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/performers/pa/scoring", aMkt, map[string]any{"profile_id": "default"})
	te.expect(t, http.StatusNoContent, http.MethodDelete, "/v1/profiles/secret", aMkt, nil)
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/profiles/secret", aMkt, nil)
	te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles/secret", bAdm, nil)
}

func TestInvalidProfilesAndScoringListEveryProblem(t *testing.T) {
	te := newTenants(t)
	aMkt := te.a[store.RoleMarketer]
	r := te.expect(t, http.StatusUnprocessableEntity, http.MethodPut, "/v1/profiles/-bad", aMkt, map[string]any{
		"weights":               map[string]any{"affinity": -1, "post": 2},
		"affinity_window_words": 0,
		"stream_mode":           "sometimes",
		"post_cap":              0,
		"negation_words":        []string{"love"},
	})
	want := []string{"id", "weights.affinity", "negation_words[0]", "affinity_window_words", "stream_mode", "post_cap"}
	if got := r.problems(t); !slices.Equal(got, want) {
		t.Fatalf("problems %v, want %v", got, want)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/profiles/-bad", aMkt, nil)
	// Unknown fields are typos, not ignored.
	te.expect(t, http.StatusBadRequest, http.MethodPut, "/v1/profiles/ok", aMkt, map[string]any{"wieghts": map[string]any{}})

	r = te.expect(t, http.StatusUnprocessableEntity, http.MethodPut, "/v1/performers/pa/scoring", aMkt, map[string]any{
		"aliases": []string{"fine", "", "…"}, "charities": []string{"c", "c"}, "profile_id": "nope",
	})
	want = []string{"aliases[1]", "aliases[2]", "charities[1]", "profile_id"}
	if got := r.problems(t); !slices.Equal(got, want) {
		t.Fatalf("problems %v, want %v", got, want)
	}
}

// TestProfileChangesReachTheScorer changes a profile over HTTP and watches the
// scorer follow through the database's notification alone: nothing else
// refreshes it.
func TestProfileChangesReachTheScorer(t *testing.T) {
	te := newTenants(t)
	ctx := t.Context()
	aMkt := te.a[store.RoleMarketer]
	dir, err := te.store.NewDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scorers, err := te.store.NewScorers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 1)
	lctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = dir.Listen(lctx, func(ctx context.Context) {
			if err := scorers.Refresh(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("refreshing scorers: %v", err)
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	<-changed // listening from here on

	waitFor := func(what string, ok func(scoring.Profile) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			if p, found := scorers.Scorer().Profile("pa"); found && ok(p) {
				return
			}
			select {
			case <-changed:
			case <-timeout:
				p, _ := scorers.Scorer().Profile("pa")
				t.Fatalf("scorer never saw %s; pa scores with %s %+v", what, p.ID, p.Weights)
			}
		}
	}
	te.expect(t, http.StatusCreated, http.MethodPut, "/v1/profiles/gold", aMkt, map[string]any{"weights": map[string]any{"follow": 3}})
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/performers/pa/scoring", aMkt, map[string]any{"profile_id": "gold"})
	waitFor("pa on gold", func(p scoring.Profile) bool { return p.ID == "a/gold" && p.Weights.Follow == 3 })
	te.expect(t, http.StatusOK, http.MethodPut, "/v1/profiles/gold", aMkt, map[string]any{"weights": map[string]any{"follow": 7}})
	waitFor("gold's new weight", func(p scoring.Profile) bool { return p.Weights.Follow == 7 })

	cfg, err := te.store.ScoringConfig(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cfg.Performers, func(p scoring.Performer) bool { return p.ID == "pa" })
	if i < 0 || cfg.Performers[i].ProfileID != "a/gold" || !slices.Contains(cfg.Performers[i].Names, "Performer A") {
		t.Fatalf("scoring config of pa: %+v", cfg.Performers)
	}
}

func TestAdminsCreateAndRevokeTokensOfTheirOwnOrganization(t *testing.T) {
	te := newTenants(t)
	aAdm := te.a[store.RoleAdmin]
	r := te.expect(t, http.StatusCreated, http.MethodPost, "/v1/tokens", aAdm, map[string]any{"role": "viewer", "name": "dashboard"})
	var created struct {
		ID    string `json:"id"`
		OrgID string `json:"org_id"`
		Role  string `json:"role"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if created.OrgID != "a" || created.Role != "viewer" || !strings.HasPrefix(created.Token, store.TokenPrefix) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("created token: %s", r.body)
	}
	te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles", created.Token, nil)
	te.expect(t, http.StatusForbidden, http.MethodPut, "/v1/profiles/x", created.Token, map[string]any{})

	r = te.expect(t, http.StatusOK, http.MethodGet, "/v1/tokens", aAdm, nil)
	if s := string(r.body); !strings.Contains(s, created.ID) || strings.Contains(s, created.Token) || strings.Contains(s, `"token"`) {
		t.Fatalf("token list: %s", s)
	}
	r = te.expect(t, http.StatusOK, http.MethodGet, "/v1/tokens", te.bAdm, nil)
	if strings.Contains(string(r.body), created.ID) {
		t.Fatalf("b lists a's token: %s", r.body)
	}

	r = te.expect(t, http.StatusUnprocessableEntity, http.MethodPost, "/v1/tokens", aAdm, map[string]any{"role": "root"})
	if got := r.problems(t); !slices.Equal(got, []string{"role", "name"}) {
		t.Fatalf("problems: %v", got)
	}
	te.expect(t, http.StatusNotFound, http.MethodDelete, "/v1/tokens/"+created.ID, te.bAdm, nil)
	te.expect(t, http.StatusNotFound, http.MethodDelete, "/v1/tokens/not-a-uuid", aAdm, nil)
	te.expect(t, http.StatusOK, http.MethodGet, "/v1/profiles", created.Token, nil)
	te.expect(t, http.StatusNoContent, http.MethodDelete, "/v1/tokens/"+created.ID, aAdm, nil)
	r = te.expect(t, http.StatusUnauthorized, http.MethodGet, "/v1/profiles", created.Token, nil)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	// An admin may revoke its own token, and is locked out after.
	var me struct{ Tokens []store.Token }
	_ = json.Unmarshal(te.expect(t, http.StatusOK, http.MethodGet, "/v1/tokens", aAdm, nil).body, &me)
	i := slices.IndexFunc(me.Tokens, func(tk store.Token) bool { return tk.Name == "admin" })
	if i < 0 || me.Tokens[i].LastUsedAt == nil {
		t.Fatalf("admin token not listed as used: %+v", me.Tokens)
	}
	te.expect(t, http.StatusNoContent, http.MethodDelete, "/v1/tokens/"+me.Tokens[i].ID.String(), aAdm, nil)
	te.expect(t, http.StatusUnauthorized, http.MethodGet, "/v1/tokens", aAdm, nil)
}

package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/store"
)

// TestAgentCredentialsAreScopedAndRevocable: a partner declares an agent
// for its user; the agent's credential reads the fan's offers only while it
// is live and only within its scopes, and a partner key or marketer token
// is no agent credential.
func TestAgentCredentialsAreScopedAndRevocable(t *testing.T) {
	te := newTenants(t)
	ctx := t.Context()
	fan := uuid.New()
	if err := te.store.BulkLoadFans(ctx, "streamly", []store.BulkFan{{Fan: store.Fan{ID: fan, TimeZone: "UTC"}, PartnerUserID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Partners: te.store, Marketers: te.store, Push: push.NewHub(), Agents: te.store,
		Redemptions: te.store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	te.url = srv.URL

	te.expect(t, http.StatusUnprocessableEntity, http.MethodPost, "/v1/users/u1/agents", "pk_partner", map[string]any{"name": "TicketPal", "scopes": []string{"root"}})
	te.expect(t, http.StatusNotFound, http.MethodPost, "/v1/users/nobody/agents", "pk_partner", map[string]any{"name": "TicketPal", "scopes": []string{"offers:read"}})
	r := te.expect(t, http.StatusCreated, http.MethodPost, "/v1/users/u1/agents", "pk_partner", map[string]any{"name": "TicketPal", "scopes": []string{"offers:read"}}).json(t)
	cred, id := r["credential"].(string), r["agent_id"].(string)

	got := te.expect(t, http.StatusOK, http.MethodGet, "/v1/agent/offers", cred, nil).json(t)
	if got["agent_id"] != id || len(got["offers"].([]any)) != 0 {
		t.Fatalf("agent poll: %v", got)
	}
	te.expect(t, http.StatusForbidden, http.MethodPost, "/v1/agent/offers/"+uuid.NewString()+"/redeem", cred, nil)
	for _, tok := range []string{"", "pk_partner", te.a[store.RoleAdmin], "ag_forged"} {
		te.expect(t, http.StatusUnauthorized, http.MethodGet, "/v1/agent/offers", tok, nil)
	}
	if list := te.expect(t, http.StatusOK, http.MethodGet, "/v1/users/u1/agents", "pk_partner", nil).json(t)["agents"].([]any); len(list) != 1 {
		t.Fatalf("agents: %v", list)
	}
	te.expect(t, http.StatusNoContent, http.MethodDelete, "/v1/users/u1/agents/"+id, "pk_partner", nil)
	te.expect(t, http.StatusNotFound, http.MethodDelete, "/v1/users/u1/agents/"+id, "pk_partner", nil)
	te.expect(t, http.StatusUnauthorized, http.MethodGet, "/v1/agent/offers", cred, nil)
}

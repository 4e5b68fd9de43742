package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

const noAgent = "no such user or agent at this partner"

// Agents is what declared agents' endpoints need (F15).
type Agents interface {
	CreateAgent(ctx context.Context, fan uuid.UUID, partnerID, name string, scopes []string) (store.Agent, string, error)
	Agents(ctx context.Context, fan uuid.UUID, partnerID string) ([]store.Agent, error)
	RevokeAgent(ctx context.Context, fan uuid.UUID, partnerID string, id uuid.UUID) error
	AgentByCredential(ctx context.Context, credential string) (store.Agent, bool, error)
	AgentOffers(ctx context.Context, a store.Agent, now time.Time) ([]store.AgentOffer, error)
	JoinQueueAsAgent(ctx context.Context, showID string, a store.Agent, now time.Time) (store.QueueEntry, bool, time.Time, error)
}

// routeAgents serves partners the management of their users' agents and
// agents their own API, with the agent's credential as bearer token.
func (s *server) routeAgents(mux *http.ServeMux) {
	if s.cfg.Agents == nil {
		return
	}
	mux.HandleFunc("POST /v1/users/{user_id}/agents", s.withPartner(s.createAgent))
	mux.HandleFunc("GET /v1/users/{user_id}/agents", s.withPartner(s.listAgents))
	mux.HandleFunc("DELETE /v1/users/{user_id}/agents/{agent_id}", s.withPartner(s.revokeAgent))
	mux.HandleFunc("GET /v1/agent/offers", s.withAgent(store.ScopeOffersRead, s.agentOffers))
	if s.cfg.Redemptions != nil {
		mux.HandleFunc("POST /v1/agent/offers/{offer_id}/redeem", s.withAgent(store.ScopeOffersRedeem, s.agentRedeem))
	}
	if s.cfg.Queues != nil {
		mux.HandleFunc("POST /v1/agent/shows/{show_id}/queue", s.withAgent(store.ScopeQueueJoin, s.agentJoinQueue))
	}
}

// withAgent authenticates the agent's credential and checks its scope.
func (s *server) withAgent(scope string, h func(w http.ResponseWriter, r *http.Request, a store.Agent)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cred, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		a, ok, err := store.Agent{}, false, error(nil)
		if found {
			a, ok, err = s.cfg.Agents.AgentByCredential(r.Context(), cred)
		}
		if err != nil {
			s.marketerError(w, r, err, noAgent)
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="crescendo-agents"`)
			writeProblem(w, http.StatusUnauthorized, "an agent credential that is live is required")
			return
		}
		if !a.Allows(scope) {
			writeProblem(w, http.StatusForbidden, "the fan did not give this agent the "+scope+" scope")
			return
		}
		h(w, r, a)
	}
}

// agentUser resolves the path's user to their fan, or answers 404.
func (s *server) agentUser(w http.ResponseWriter, r *http.Request, partnerID string) (uuid.UUID, bool) {
	fan, linked, err := s.cfg.Partners.FanByAccount(r.Context(), partnerID, r.PathValue("user_id"))
	if err != nil {
		s.marketerError(w, r, err, noAgent)
		return uuid.Nil, false
	}
	if !linked {
		writeProblem(w, http.StatusNotFound, "no fan is linked to this user at this partner")
		return uuid.Nil, false
	}
	return fan, true
}

// createAgent: the fan, signed in at the partner, authorizes an agent:
// {"name": "TicketPal", "scopes": ["offers:read", "offers:redeem", "queue:join"]}.
func (s *server) createAgent(w http.ResponseWriter, r *http.Request, partnerID string) {
	fan, ok := s.agentUser(w, r, partnerID)
	if !ok {
		return
	}
	var body struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	a, cred, err := s.cfg.Agents.CreateAgent(r.Context(), fan, partnerID, body.Name, body.Scopes)
	if err != nil {
		s.marketerError(w, r, err, noAgent)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"agent_id": a.ID, "name": a.Name, "scopes": a.Scopes,
		"created_at": a.CreatedAt, "credential": cred})
}

func (s *server) listAgents(w http.ResponseWriter, r *http.Request, partnerID string) {
	fan, ok := s.agentUser(w, r, partnerID)
	if !ok {
		return
	}
	list, err := s.cfg.Agents.Agents(r.Context(), fan, partnerID)
	if err != nil {
		s.marketerError(w, r, err, noAgent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": list})
}

func (s *server) revokeAgent(w http.ResponseWriter, r *http.Request, partnerID string) {
	fan, ok := s.agentUser(w, r, partnerID)
	if !ok {
		return
	}
	id, err := uuid.Parse(r.PathValue("agent_id"))
	if err != nil {
		writeProblem(w, http.StatusNotFound, "no such agent")
		return
	}
	if err := s.cfg.Agents.RevokeAgent(r.Context(), fan, partnerID, id); err != nil {
		s.marketerError(w, r, err, noAgent)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentOffers is the agent's poll of its fan's live offers.
func (s *server) agentOffers(w http.ResponseWriter, r *http.Request, a store.Agent) {
	list, err := s.cfg.Agents.AgentOffers(r.Context(), a, s.cfg.Clock())
	if err != nil {
		s.marketerError(w, r, err, noAgent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent_id": a.ID, "offers": list})
}

// agentRedeem redeems one of the fan's offers, attributed to the agent.
func (s *server) agentRedeem(w http.ResponseWriter, r *http.Request, a store.Agent) {
	offerID, err := uuid.Parse(r.PathValue("offer_id"))
	if err != nil {
		writeCodedProblem(w, http.StatusNotFound, "offer_not_found", "no such offer")
		return
	}
	red, err := s.cfg.Redemptions.Redeem(r.Context(), store.RedeemRequest{
		OfferID: offerID, FanID: a.FanID, PartnerID: a.PartnerID, At: s.cfg.Clock(), Agent: &a.ID,
	})
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newRedemption(red))
}

// agentJoinQueue joins the fan to a show's queue under the agent policy.
func (s *server) agentJoinQueue(w http.ResponseWriter, r *http.Request, a store.Agent) {
	showID := r.PathValue("show_id")
	e, created, from, err := s.cfg.Agents.JoinQueueAsAgent(r.Context(), showID, a, s.cfg.Clock())
	if err != nil {
		if !from.IsZero() {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(max(time.Until(from).Seconds(), 1)), 10))
			writeCodedProblem(w, http.StatusConflict, "agent_hold", "agents join this queue from "+from.UTC().Format(time.RFC3339))
			return
		}
		if errors.Is(err, store.ErrAgentsBarred) {
			writeCodedProblem(w, http.StatusForbidden, "agents_barred", "this sale admits no agents; the fan may join in person")
			return
		}
		s.queueFailure(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, newQueueEntry("", e))
}

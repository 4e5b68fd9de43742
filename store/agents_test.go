package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/queue"
	"github.com/crescendo-hq/crescendo/store"
)

// offerIDs returns the fan's offers, oldest first.
func offerIDs(t *testing.T, s *store.Store, fan uuid.UUID) []uuid.UUID {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(), `SELECT id FROM offers WHERE fan_id = $1 ORDER BY show_id`, fan)
	must(t, err)
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		must(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	return ids
}

// TestDeclaredAgentActsForItsFanAndIsNotABot: a fan's agent polls and
// redeems three offers within a fraction of a second of their sending, each
// action attributed to fan and agent; the job does not count the agent's
// speed against the fan, while an undeclared account redeeming as fast is
// classified automated. A revoked credential names no one.
func TestDeclaredAgentActsForItsFanAndIsNotABot(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	shows := []string{"s1", "s2", "s3"}
	queueCatalog(t, s, shows...)
	fans := seedFans(t, s, "u", 2)
	withAgent, bot := fans[0], fans[1]
	expires := saleOpens.Add(time.Hour)
	for _, show := range shows {
		seedOffers(t, s, show, testOffer{fan: withAgent, tier: 1, status: "delivered", expires: expires},
			testOffer{fan: bot, tier: 1, status: "delivered", expires: expires})
	}
	var inv *store.InvalidError
	if _, _, err := s.CreateAgent(ctx, withAgent, "p", "TicketPal", []string{"everything"}); !errors.As(err, &inv) {
		t.Fatalf("unknown scope: %v, want invalid", err)
	}
	agent, cred, err := s.CreateAgent(ctx, withAgent, "p", "TicketPal", []string{store.ScopeOffersRead, store.ScopeOffersRedeem})
	must(t, err)
	a, ok, err := s.AgentByCredential(ctx, cred)
	if err != nil || !ok || a.ID != agent.ID || a.FanID != withAgent || a.Allows(store.ScopeQueueJoin) {
		t.Fatalf("agent by credential: %+v %v %v", a, ok, err)
	}
	issued := expires.Add(-time.Hour)
	list, err := s.AgentOffers(ctx, a, issued.Add(time.Second))
	must(t, err)
	if len(list) != 3 {
		t.Fatalf("agent sees %d offers, want 3", len(list))
	}
	for i, id := range offerIDs(t, s, withAgent) {
		_, err := s.Redeem(ctx, store.RedeemRequest{OfferID: id, FanID: withAgent, PartnerID: "p", At: issued.Add(time.Duration(200+i*50) * time.Millisecond), Agent: &a.ID})
		must(t, err)
	}
	for i, id := range offerIDs(t, s, bot) {
		_, err := s.Redeem(ctx, store.RedeemRequest{OfferID: id, FanID: bot, PartnerID: "p", At: issued.Add(time.Duration(200+i*50) * time.Millisecond)})
		must(t, err)
	}
	actions, err := s.AgentActions(ctx, withAgent)
	must(t, err)
	if len(actions) != 4 || actions[0].Action != "poll_offers" || actions[3].Action != "redeem" || actions[3].AgentID != a.ID {
		t.Fatalf("agent actions %+v, want a poll and three redemptions", actions)
	}
	var byAgent int
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM redemptions WHERE fan_id = $1 AND by_agent AND agent_id = $2`, withAgent, a.ID).Scan(&byAgent))
	if byAgent != 3 {
		t.Fatalf("%d redemptions attributed to the agent, want 3", byAgent)
	}

	_, err = s.DetectBots(ctx, expires)
	must(t, err)
	if c := classOf(t, s, withAgent); c.Class != bots.Human {
		t.Fatalf("fan with a declared agent: %+v, want human", c)
	}
	if c := classOf(t, s, bot); c.Class != bots.Automated || c.Reasons[0].Signal != bots.SignalFastReactions {
		t.Fatalf("undeclared fast redeemer: %+v, want automated for fast reactions", c)
	}

	must(t, s.RevokeAgent(ctx, withAgent, "p", a.ID))
	if _, ok, _ := s.AgentByCredential(ctx, cred); ok {
		t.Fatal("a revoked credential still names its agent")
	}
	if err := s.RevokeAgent(ctx, withAgent, "p", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
}

// TestAgentsJoinQueuesAfterTheOpeningRush: an agent cannot join before the
// sale has been open one batch interval; then it joins as its fan would,
// and the join is attributed to it.
func TestAgentsJoinQueuesAfterTheOpeningRush(t *testing.T) {
	s := openSale(t, 10, time.Minute, queue.Relegate)
	ctx := t.Context()
	fan := seedFans(t, s, "u", 1)[0]
	agent, _, err := s.CreateAgent(ctx, fan, "p", "QueueBot", []string{store.ScopeQueueJoin})
	must(t, err)
	agent.FanID = fan
	_, _, from, err := s.JoinQueueAsAgent(ctx, "show", agent, saleOpens.Add(time.Second))
	if !errors.Is(err, store.ErrAgentHold) || !from.Equal(saleOpens.Add(time.Minute)) {
		t.Fatalf("agent at the opening: %v, from %s", err, from)
	}
	e, created, _, err := s.JoinQueueAsAgent(ctx, "show", agent, saleOpens.Add(time.Minute))
	must(t, err)
	if !created || e.Queue != queue.General {
		t.Fatalf("agent join: %+v created %v", e, created)
	}
	actions, err := s.AgentActions(ctx, fan)
	must(t, err)
	if len(actions) != 1 || actions[0].Action != "join_queue" || actions[0].Subject != "show" {
		t.Fatalf("actions %+v", actions)
	}
}

// TestSaleThatBarsAgents: under the bar policy an agent cannot join at any
// time, its fan still can, and the sale reads back its policy.
func TestSaleThatBarsAgents(t *testing.T) {
	s := open(t)
	queueCatalog(t, s, "show")
	ctx := t.Context()
	_, err := s.PutSale(ctx, "acme", store.Sale{ShowID: "show", OpensAt: saleOpens, Settings: queue.Settings{
		BatchSize: 10, BatchInterval: time.Minute, Automated: queue.Relegate, Agents: queue.AgentsBar,
	}})
	must(t, err)
	sale, err := s.OrgSale(ctx, "acme", "show")
	must(t, err)
	if sale.Agents != queue.AgentsBar {
		t.Fatalf("sale reads back agents %q, want bar", sale.Agents)
	}
	fan := seedFans(t, s, "u", 1)[0]
	agent, _, err := s.CreateAgent(ctx, fan, "p", "QueueBot", []string{store.ScopeQueueJoin})
	must(t, err)
	agent.FanID = fan
	if _, _, _, err := s.JoinQueueAsAgent(ctx, "show", agent, saleOpens.Add(time.Hour)); !errors.Is(err, store.ErrAgentsBarred) {
		t.Fatalf("agent joining a sale that bars agents: %v, want ErrAgentsBarred", err)
	}
	if _, created, err := s.JoinQueue(ctx, "show", fan, saleOpens.Add(time.Hour)); err != nil || !created {
		t.Fatalf("the fan in person: created %v, %v", created, err)
	}
	actions, err := s.AgentActions(ctx, fan)
	must(t, err)
	if len(actions) != 0 {
		t.Fatalf("a refused agent has actions recorded: %+v", actions)
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/queue"
)

// AgentPrefix starts every agent credential, so that it is told apart from
// partner keys and marketer tokens.
const AgentPrefix = "ag_"

// Agent scopes: what a declared agent may do for its fan (F15).
const (
	ScopeOffersRead   = "offers:read"
	ScopeOffersRedeem = "offers:redeem"
	ScopeQueueJoin    = "queue:join"
)

var agentScopes = []string{ScopeOffersRead, ScopeOffersRedeem, ScopeQueueJoin}

// Agent is a declared agent: software a fan authorized through a partner.
type Agent struct {
	ID        uuid.UUID  `json:"agent_id"`
	FanID     uuid.UUID  `json:"-"`
	PartnerID string     `json:"-"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Allows reports whether the agent holds scope.
func (a Agent) Allows(scope string) bool { return slices.Contains(a.Scopes, scope) }

// CreateAgent authorizes an agent named name for a fan with the given scopes
// and returns it with its credential, which is shown once and stored only
// as its hash.
func (s *Store) CreateAgent(ctx context.Context, fan uuid.UUID, partnerID, name string, scopes []string) (Agent, string, error) {
	var problems []error
	if name = strings.TrimSpace(name); name == "" || len(name) > 200 {
		problems = append(problems, errors.New("name: required, at most 200 bytes: the agent's name, shown to the fan"))
	}
	if len(scopes) == 0 {
		problems = append(problems, fmt.Errorf("scopes: at least one of %s", strings.Join(agentScopes, ", ")))
	}
	for _, sc := range scopes {
		if !slices.Contains(agentScopes, sc) {
			problems = append(problems, fmt.Errorf("scopes: %q is none of %s", sc, strings.Join(agentScopes, ", ")))
		}
	}
	if err := invalid(problems...); err != nil {
		return Agent{}, "", err
	}
	value, err := newSecret(AgentPrefix)
	if err != nil {
		return Agent{}, "", err
	}
	a := Agent{ID: uuid.New(), FanID: fan, PartnerID: partnerID, Name: name, Scopes: slices.Compact(slices.Sorted(slices.Values(scopes)))}
	err = s.pool.QueryRow(ctx, `INSERT INTO fan_agents (id, fan_id, partner_id, name, scopes, token_hash) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING created_at`, a.ID, fan, partnerID, a.Name, a.Scopes, HashKey(value)).Scan(&a.CreatedAt)
	if isForeignKeyViolation(err) {
		return Agent{}, "", fmt.Errorf("fan %s: %w", fan, ErrNotFound)
	}
	if err != nil {
		return Agent{}, "", fmt.Errorf("creating agent: %w", err)
	}
	return a, value, nil
}

// Agents lists a fan's agents declared through a partner, revoked ones included.
func (s *Store) Agents(ctx context.Context, fan uuid.UUID, partnerID string) ([]Agent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, scopes, created_at, revoked_at FROM fan_agents
		WHERE fan_id = $1 AND partner_id = $2 ORDER BY created_at, id`, fan, partnerID)
	if err != nil {
		return nil, fmt.Errorf("listing agents: %w", err)
	}
	out := []Agent{}
	var a Agent
	if _, err := pgx.ForEachRow(rows, []any{&a.ID, &a.Name, &a.Scopes, &a.CreatedAt, &a.RevokedAt}, func() error {
		a.FanID, a.PartnerID = fan, partnerID
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing agents: %w", err)
	}
	return out, nil
}

// RevokeAgent revokes an agent's credential at once.
func (s *Store) RevokeAgent(ctx context.Context, fan uuid.UUID, partnerID string, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE fan_agents SET revoked_at = now()
		WHERE id = $1 AND fan_id = $2 AND partner_id = $3 AND revoked_at IS NULL`, id, fan, partnerID)
	if err != nil {
		return fmt.Errorf("revoking agent: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return nil
}

// AgentByCredential returns the live agent a credential names; ok is false
// for an unknown or revoked one.
func (s *Store) AgentByCredential(ctx context.Context, credential string) (Agent, bool, error) {
	if !strings.HasPrefix(credential, AgentPrefix) {
		return Agent{}, false, nil
	}
	var a Agent
	err := s.pool.QueryRow(ctx, `SELECT id, fan_id, partner_id, name, scopes, created_at FROM fan_agents
		WHERE token_hash = $1 AND revoked_at IS NULL`, HashKey(credential)).Scan(&a.ID, &a.FanID, &a.PartnerID, &a.Name, &a.Scopes, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Agent{}, false, nil
	}
	if err != nil {
		return Agent{}, false, fmt.Errorf("authenticating agent: %w", err)
	}
	return a, true, nil
}

// AgentOffer is a live offer as the fan's agent sees it.
type AgentOffer struct {
	OfferID     uuid.UUID `json:"offer_id"`
	RuleID      string    `json:"rule_id"`
	Tier        int       `json:"tier"`
	Perks       []string  `json:"perks"`
	PerformerID string    `json:"performer_id"`
	ShowID      string    `json:"show_id"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// AgentOffers returns the agent's fan's live offers, oldest first, and
// records the poll as an action of the agent.
func (s *Store) AgentOffers(ctx context.Context, a Agent, now time.Time) ([]AgentOffer, error) {
	out := []AgentOffer{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, rule_id, tier, perks, performer_id, show_id, issued_at, expires_at FROM offers
			WHERE fan_id = $1 AND status IN ('issued', 'delivered') AND expires_at > $2 ORDER BY issued_at, id`, a.FanID, now)
		if err != nil {
			return fmt.Errorf("reading agent's offers: %w", err)
		}
		var o AgentOffer
		if _, err := pgx.ForEachRow(rows, []any{&o.OfferID, &o.RuleID, &o.Tier, &o.Perks, &o.PerformerID, &o.ShowID, &o.IssuedAt, &o.ExpiresAt}, func() error {
			out = append(out, o)
			return nil
		}); err != nil {
			return fmt.Errorf("reading agent's offers: %w", err)
		}
		return recordAgentAction(ctx, tx, a.ID, a.FanID, "poll_offers", fmt.Sprintf("%d offers", len(out)))
	})
	return out, err
}

func recordAgentAction(ctx context.Context, tx pgx.Tx, agent, fan uuid.UUID, action, subject string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO agent_actions (agent_id, fan_id, action, subject) VALUES ($1, $2, $3, $4)`,
		agent, fan, action, subject); err != nil {
		return fmt.Errorf("recording agent action: %w", err)
	}
	return nil
}

// AgentAction is one thing an agent did for its fan.
type AgentAction struct {
	AgentID uuid.UUID `json:"agent_id"`
	Action  string    `json:"action"`
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
}

// AgentActions lists what a fan's agents did, oldest first.
func (s *Store) AgentActions(ctx context.Context, fan uuid.UUID) ([]AgentAction, error) {
	rows, err := s.pool.Query(ctx, `SELECT agent_id, action, subject, at FROM agent_actions WHERE fan_id = $1 ORDER BY id`, fan)
	if err != nil {
		return nil, fmt.Errorf("reading agent actions: %w", err)
	}
	out := []AgentAction{}
	var a AgentAction
	if _, err := pgx.ForEachRow(rows, []any{&a.AgentID, &a.Action, &a.Subject, &a.At}, func() error {
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading agent actions: %w", err)
	}
	return out, nil
}

// ErrAgentHold is an agent joining a queue before its sale has been open
// for one batch interval: the agent policy (F15) keeps software from going
// ahead of people of the same tier by reflexes alone at the opening rush.
var ErrAgentHold = errors.New("agents join a queue one batch interval after the sale opens")

// ErrAgentsBarred is an agent joining the queue of a sale whose agent policy
// bars agents: the fan may still join in person.
var ErrAgentsBarred = errors.New("this sale admits no agents: the fan joins in person")

// JoinQueueAsAgent joins the agent's fan to a show's queue as JoinQueue
// does, under the agent policy, and records the action. The fan's class
// still decides relegation: a declared agent does not launder a bot.
func (s *Store) JoinQueueAsAgent(ctx context.Context, showID string, a Agent, now time.Time) (QueueEntry, bool, time.Time, error) {
	var from time.Time
	var policy string
	err := s.pool.QueryRow(ctx, `SELECT opens_at + batch_interval, agents FROM sales WHERE show_id = $1`, showID).Scan(&from, &policy)
	if errors.Is(err, pgx.ErrNoRows) {
		return QueueEntry{}, false, time.Time{}, fmt.Errorf("show %s: %w", showID, ErrNoSale)
	}
	if err != nil {
		return QueueEntry{}, false, time.Time{}, fmt.Errorf("reading sale for agent: %w", err)
	}
	if queue.AgentPolicy(policy) == queue.AgentsBar {
		return QueueEntry{}, false, time.Time{}, fmt.Errorf("show %s: %w", showID, ErrAgentsBarred)
	}
	if now.Before(from) {
		return QueueEntry{}, false, from, fmt.Errorf("show %s: %w", showID, ErrAgentHold)
	}
	e, created, err := s.JoinQueue(ctx, showID, a.FanID, now)
	if err != nil {
		return e, created, time.Time{}, err
	}
	if created {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			return recordAgentAction(ctx, tx, a.ID, a.FanID, "join_queue", showID)
		})
	}
	return e, created, time.Time{}, err
}

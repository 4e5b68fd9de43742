// Package api is Crescendo's HTTP surface: health, the in-app push stream
// partner apps hold open for their users, fans' registration and consent,
// marketers' scoring profiles and tokens, and (in the demo) the outbox of what
// the provider sandboxes received.
package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/logs"
	"github.com/crescendo-hq/crescendo/metrics"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/scoring"
)

// Partners authenticates partner apps and resolves their users.
type Partners interface {
	PartnerByKey(ctx context.Context, key string) (partnerID string, ok bool, err error)
	FanByAccount(ctx context.Context, partnerID, partnerUserID string) (uuid.UUID, bool, error)
}

// Config configures the HTTP API.
type Config struct {
	Partners Partners
	// Fans, when set, serves fan registration, consent and erasure under /v1/users.
	Fans Fans
	// Explanations and Scorers, when set with Fans, serve index explanations.
	Explanations Explanations
	Scorers      interface{ Scorer() *scoring.Scorer }
	Clock        func() time.Time
	// Push serves the in-app push stream and, on a hub made by push.New,
	// partners' push webhooks (F16); a push.NewHub hub serves streams only.
	Push *push.Hub
	// StreamTokens, when set, serves partners' backends short-lived tokens
	// with which their apps open one user's push stream without the API key
	// (POST /v1/push/stream-tokens), and lets the stream take them.
	StreamTokens *push.StreamTokens
	// Marketers, when set, serves marketer organizations' scoring profiles,
	// performers' scoring and API tokens under /v1/profiles, /v1/performers
	// and /v1/tokens, for callers with a marketer token.
	Marketers Marketers
	// Redemptions and Signer, when both set, serve POST /v1/offers/redeem and the offer links, GET /o/{token} (F11).
	Redemptions Redemptions
	Signer      TokenVerifier
	// OptOuts and Unsubscribe, when both set, serve the unsubscribe link of
	// offer emails, /u/{token}, RFC 8058 one-click included (F18).
	OptOuts     OptOuts
	Unsubscribe UnsubscribeVerifier
	// Queues, when set, serves shows' queues to partners under
	// /v1/shows/{show_id}/queue and, with Marketers, their sales under
	// /v1/shows/{show_id}/sale (F12).
	Queues Queues
	// Rules, when set with Marketers, serves the organization's offer rules
	// under /v1/rules (F9); DryRun, when set too, their dry runs (F12a),
	// which otherwise answer 501.
	Rules  RuleStore
	DryRun RuleDryRunner
	// Funnels, when set with Marketers, serves rules' funnels and shows'
	// presale code pools (F10–F12).
	Funnels Funnels
	// Ready reports what keeps the process from serving, by check name; nil values pass.
	Ready func(ctx context.Context) map[string]error
	// Webhooks, when its Feedback is set, serves the providers' signed
	// webhooks under /v1/webhooks (F18).
	Webhooks Webhooks
	// Outbox, when set, serves GET /dev/outbox (demo and development only).
	Outbox func() any
	// Ingest, when set, takes partners' signed batches of events at
	// POST /v1/events (F23).
	Ingest Ingester
	// Metrics, when set, serves GET /metrics and counts and times every
	// request by route.
	Metrics *metrics.Metrics
	// Bots, when set with Marketers, serves fans' bot classifications,
	// marketers' overrides and the reseller watch list (F13, F14), and adds
	// the classification to index explanations.
	Bots Bots
	// Agents, when set, serves fans' declared agents (F15): partners manage
	// them under /v1/users/{user_id}/agents, agents act under /v1/agent.
	Agents Agents
	// Jobs, when set, serves operators the periodic jobs' run history and
	// runs by hand under /v1/jobs (F20), for callers with OperatorToken.
	Jobs          Jobs
	OperatorToken string
	// Heartbeat is the interval of SSE comments that keep idle streams open through proxies.
	Heartbeat time.Duration // default 15s
	Logger    *slog.Logger
}

// New returns the API handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Partners == nil || cfg.Push == nil {
		return nil, errors.New("api: Partners and Push are required")
	}
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, 15*time.Second)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	logger := cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "api"))
	s := &server{cfg: cfg, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	s.routePush(mux)
	if cfg.Fans != nil {
		s.routeFans(mux)
	}
	if cfg.Marketers != nil {
		s.routeMarketers(mux)
	}
	s.routeRedemptions(mux)
	s.routeQueues(mux)
	s.routeRules(mux)
	s.routeFunnels(mux)
	s.routeMarketerExplanations(mux)
	s.routeBots(mux)
	s.routeAgents(mux)
	s.routeJobs(mux)
	s.routeUnsubscribe(mux)
	s.routeIngest(mux)
	if err := s.routeWebhooks(mux); err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /v1/openapi.yaml", serveOpenAPI)
	if cfg.Outbox != nil {
		mux.HandleFunc("GET /dev/outbox", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, cfg.Outbox())
		})
	}
	var h http.Handler = mux
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics.Handler())
		h = cfg.Metrics.Middleware(mux, func(r *http.Request) bool { return r.Pattern == "GET /v1/push/stream" })
	}
	return s.withRequestID(h), nil
}

// withRequestID gives every request an id, the caller's X-Request-Id when it
// sent a usable one, answered in X-Request-Id and carried by every log line
// logged with the request's context.
func (s *server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !usableRequestID(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(logs.WithRequestID(r.Context(), id))
		began := time.Now()
		next.ServeHTTP(w, r)
		s.logger.DebugContext(r.Context(), "http request", slog.String("method", r.Method),
			slog.String("route", r.Pattern), slog.Duration("took", time.Since(began)))
	})
}

// usableRequestID accepts ids of up to 128 visible ASCII characters: a
// caller's id goes into logs and headers as it is.
func usableRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

type server struct {
	cfg    Config
	logger *slog.Logger
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := true
	if s.cfg.Ready != nil {
		for name, err := range s.cfg.Ready(r.Context()) {
			if err != nil {
				checks[name] = err.Error()
				ok = false
			} else {
				checks[name] = "ok"
			}
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}

// problem is an error body in the shape of RFC 9457 problem details.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Title: http.StatusText(status), Status: status, Detail: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearer returns the request's bearer token, or answers 401 with detail.
func bearer(w http.ResponseWriter, r *http.Request, detail string) (string, bool) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crescendo"`)
		writeProblem(w, http.StatusUnauthorized, detail)
		return "", false
	}
	return token, true
}

// rejectToken answers 401 for a bearer token that names no one.
func rejectToken(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="crescendo", error="invalid_token"`)
	writeProblem(w, http.StatusUnauthorized, detail)
}

// partner authenticates the caller as a partner app by its bearer key.
func (s *server) partner(w http.ResponseWriter, r *http.Request) (string, bool) {
	key, ok := bearer(w, r, "a partner API key is required as a bearer token")
	if !ok {
		return "", false
	}
	id, ok, err := s.cfg.Partners.PartnerByKey(r.Context(), key)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "authenticating partner", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return "", false
	}
	if !ok {
		rejectToken(w, "unknown API key")
		return "", false
	}
	return id, true
}

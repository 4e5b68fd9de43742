package api

import (
	"context"
	"net/http"

	"github.com/crescendo-hq/crescendo/store"
)

// Funnels reports rules' funnels and keeps shows' presale code pools, each
// scoped to the caller's organization.
type Funnels interface {
	RuleFunnel(ctx context.Context, orgID, ruleID string) (store.Funnel, error)
	ImportPresaleCodes(ctx context.Context, orgID, showID string, codes []string) (int, error)
	PresaleCodes(ctx context.Context, orgID, showID string) (store.PresalePool, error)
}

const noOrgShow = "no such show in this organization"

func (s *server) routeFunnels(mux *http.ServeMux) {
	if s.cfg.Funnels == nil || s.cfg.Marketers == nil {
		return
	}
	viewer, marketer := s.withRole(store.RoleViewer), s.withRole(store.RoleMarketer)
	mux.HandleFunc("GET /v1/rules/{id}/funnel", viewer(s.ruleFunnel))
	mux.HandleFunc("GET /v1/shows/{show_id}/presale-codes", viewer(s.presaleCodes))
	mux.HandleFunc("POST /v1/shows/{show_id}/presale-codes", marketer(s.importPresaleCodes))
}

// ruleFunnel: GET /v1/rules/{id}/funnel.
func (s *server) ruleFunnel(w http.ResponseWriter, r *http.Request, p store.Principal) {
	f, err := s.cfg.Funnels.RuleFunnel(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *server) presaleCodes(w http.ResponseWriter, r *http.Request, p store.Principal) {
	pool, err := s.cfg.Funnels.PresaleCodes(r.Context(), p.OrgID, r.PathValue("show_id"))
	if err != nil {
		s.marketerError(w, r, err, noOrgShow)
		return
	}
	writeJSON(w, http.StatusOK, pool)
}

// importPresaleCodes: POST /v1/shows/{show_id}/presale-codes {"codes": [...]}.
func (s *server) importPresaleCodes(w http.ResponseWriter, r *http.Request, p store.Principal) {
	var body struct {
		Codes []string `json:"codes"`
	}
	// Up to 100,000 codes of 64 characters: more than decodeBody's limit.
	if !decodeBodyUpTo(w, r, &body, 8<<20) {
		return
	}
	n, err := s.cfg.Funnels.ImportPresaleCodes(r.Context(), p.OrgID, r.PathValue("show_id"), body.Codes)
	if err != nil {
		s.marketerError(w, r, err, noOrgShow)
		return
	}
	pool, err := s.cfg.Funnels.PresaleCodes(r.Context(), p.OrgID, r.PathValue("show_id"))
	if err != nil {
		s.marketerError(w, r, err, noOrgShow)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"imported": n, "skipped": len(body.Codes) - n, "pool": pool})
}

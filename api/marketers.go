package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// Marketers authenticates marketer tokens and keeps each organization's
// scoring profiles, performers' scoring settings and tokens. Every method
// after Authenticate is scoped to one organization: what belongs to another
// is store.ErrNotFound, exactly as what does not exist.
type Marketers interface {
	Authenticate(ctx context.Context, token string) (store.Principal, bool, error)

	OrgProfiles(ctx context.Context, orgID string) ([]store.OrgProfile, error)
	OrgProfileByID(ctx context.Context, orgID, name string) (store.OrgProfile, error)
	PutOrgProfile(ctx context.Context, orgID string, p scoring.Profile) (created bool, err error)
	DeleteOrgProfile(ctx context.Context, orgID, name string) error

	OrgPerformerScoring(ctx context.Context, orgID, performerID string) (store.OrgPerformer, error)
	SetOrgPerformerScoring(ctx context.Context, orgID, performerID string, ps store.PerformerScoring) error

	Tokens(ctx context.Context, orgID string) ([]store.Token, error)
	CreateToken(ctx context.Context, orgID string, role store.Role, name string) (store.Token, string, error)
	RevokeToken(ctx context.Context, orgID string, id uuid.UUID) error
}

func (s *server) routeMarketers(mux *http.ServeMux) {
	viewer, marketer, admin := s.withRole(store.RoleViewer), s.withRole(store.RoleMarketer), s.withRole(store.RoleAdmin)
	mux.HandleFunc("GET /v1/profiles", viewer(s.listProfiles))
	mux.HandleFunc("GET /v1/profiles/{id}", viewer(s.getProfile))
	mux.HandleFunc("PUT /v1/profiles/{id}", marketer(s.putProfile))
	mux.HandleFunc("DELETE /v1/profiles/{id}", marketer(s.deleteProfile))
	mux.HandleFunc("GET /v1/performers/{id}/scoring", viewer(s.getPerformerScoring))
	mux.HandleFunc("PUT /v1/performers/{id}/scoring", marketer(s.putPerformerScoring))
	mux.HandleFunc("GET /v1/tokens", admin(s.listTokens))
	mux.HandleFunc("POST /v1/tokens", admin(s.createToken))
	mux.HandleFunc("DELETE /v1/tokens/{id}", admin(s.revokeToken))
}

type marketerHandler func(w http.ResponseWriter, r *http.Request, p store.Principal)

// withRole authenticates the caller by its marketer token and lets it through
// when its role is least or above: 401 without a valid token, 403 below it.
func (s *server) withRole(least store.Role) func(marketerHandler) http.HandlerFunc {
	return func(h marketerHandler) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			token, ok := bearer(w, r, "a marketer API token is required as a bearer token")
			if !ok {
				return
			}
			p, ok, err := s.cfg.Marketers.Authenticate(r.Context(), token)
			if err != nil {
				s.logger.ErrorContext(r.Context(), "authenticating marketer", slog.Any("error", err))
				writeProblem(w, http.StatusInternalServerError, "")
				return
			}
			if !ok {
				rejectToken(w, "unknown or revoked token")
				return
			}
			if !p.Role.AtLeast(least) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="crescendo", error="insufficient_scope"`)
				writeProblem(w, http.StatusForbidden, "a "+string(p.Role)+" token cannot do this; it takes "+string(least)+" or above")
				return
			}
			h(w, r, p)
		}
	}
}

// marketerError answers a store error: 422 listing every problem, 404 for
// what the organization does not own (whether or not it exists elsewhere),
// 403 for built-in profiles, 409 for profiles in use.
func (s *server) marketerError(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	var inv *store.InvalidError
	switch {
	case errors.As(err, &inv):
		writeInvalid(w, inv.Err)
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, http.StatusNotFound, notFound)
	case errors.Is(err, store.ErrBuiltIn):
		writeProblem(w, http.StatusForbidden, "built-in profiles are shared by every organization and cannot be changed")
	case errors.Is(err, store.ErrInUse):
		writeProblem(w, http.StatusConflict, err.Error())
	default:
		s.logger.ErrorContext(r.Context(), "serving marketer request", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
	}
}

const (
	noProfile   = "no such profile in this organization"
	noPerformer = "no such performer in this organization"
	noToken     = "no such token in this organization"
)

func (s *server) listProfiles(w http.ResponseWriter, r *http.Request, p store.Principal) {
	list, err := s.cfg.Marketers.OrgProfiles(r.Context(), p.OrgID)
	if err != nil {
		s.marketerError(w, r, err, noProfile)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"profiles": list})
}

// getProfile answers the bare profile, so that what GET returns can be
// changed and sent back with PUT.
func (s *server) getProfile(w http.ResponseWriter, r *http.Request, p store.Principal) {
	prof, err := s.cfg.Marketers.OrgProfileByID(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		s.marketerError(w, r, err, noProfile)
		return
	}
	if !prof.UpdatedAt.IsZero() {
		w.Header().Set("Last-Modified", prof.UpdatedAt.UTC().Format(http.TimeFormat))
	}
	writeJSON(w, http.StatusOK, prof.Profile)
}

// putProfile creates or replaces one of the organization's profiles. Fields
// the body leaves out take the built-in default's values; the id is the path's.
func (s *server) putProfile(w http.ResponseWriter, r *http.Request, p store.Principal) {
	prof := scoring.DefaultProfile()
	if !decodeBody(w, r, &prof) {
		return
	}
	prof.ID = r.PathValue("id")
	created, err := s.cfg.Marketers.PutOrgProfile(r.Context(), p.OrgID, prof)
	if err != nil {
		s.marketerError(w, r, err, noProfile)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/profiles/"+prof.ID)
	}
	writeJSON(w, status, prof)
}

func (s *server) deleteProfile(w http.ResponseWriter, r *http.Request, p store.Principal) {
	if err := s.cfg.Marketers.DeleteOrgProfile(r.Context(), p.OrgID, r.PathValue("id")); err != nil {
		s.marketerError(w, r, err, noProfile)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) getPerformerScoring(w http.ResponseWriter, r *http.Request, p store.Principal) {
	perf, err := s.cfg.Marketers.OrgPerformerScoring(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		s.marketerError(w, r, err, noPerformer)
		return
	}
	writeJSON(w, http.StatusOK, perf)
}

// performerScoring is the body of PUT /v1/performers/{id}/scoring: what GET
// answers, so it can be sent back; id and name are read-only and ignored.
type performerScoring struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Aliases   []string `json:"aliases"`
	Charities []string `json:"charities"`
	// ProfileID names a profile the organization can see; empty for the default.
	ProfileID string `json:"profile_id"`
}

func (s *server) putPerformerScoring(w http.ResponseWriter, r *http.Request, p store.Principal) {
	var body performerScoring
	if !decodeBody(w, r, &body) {
		return
	}
	id := r.PathValue("id")
	err := s.cfg.Marketers.SetOrgPerformerScoring(r.Context(), p.OrgID, id, store.PerformerScoring{
		Aliases: body.Aliases, Charities: body.Charities, ProfileID: body.ProfileID,
	})
	if err != nil {
		s.marketerError(w, r, err, noPerformer)
		return
	}
	s.getPerformerScoring(w, r, p)
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request, p store.Principal) {
	list, err := s.cfg.Marketers.Tokens(r.Context(), p.OrgID)
	if err != nil {
		s.marketerError(w, r, err, noToken)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
}

// newToken is the answer to POST /v1/tokens: the only time the token is shown.
type newToken struct {
	store.Token
	Secret string `json:"token"`
}

// createToken makes a token in the caller's own organization.
func (s *server) createToken(w http.ResponseWriter, r *http.Request, p store.Principal) {
	var body struct {
		Role store.Role `json:"role"`
		Name string     `json:"name"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	tok, secret, err := s.cfg.Marketers.CreateToken(r.Context(), p.OrgID, body.Role, body.Name)
	if err != nil {
		s.marketerError(w, r, err, noToken)
		return
	}
	s.logger.InfoContext(r.Context(), "API token created", slog.String("org", p.OrgID), slog.String("token", tok.ID.String()),
		slog.String("role", string(tok.Role)), slog.String("by", p.TokenID.String()))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, newToken{Token: tok, Secret: secret})
}

// revokeToken revokes one of the caller's organization's tokens, its own included.
func (s *server) revokeToken(w http.ResponseWriter, r *http.Request, p store.Principal) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		writeProblem(w, http.StatusNotFound, noToken)
		return
	}
	if err := s.cfg.Marketers.RevokeToken(r.Context(), p.OrgID, id); err != nil {
		s.marketerError(w, r, err, noToken)
		return
	}
	s.logger.InfoContext(r.Context(), "API token revoked", slog.String("org", p.OrgID), slog.String("token", id.String()),
		slog.String("by", p.TokenID.String()))
	w.WriteHeader(http.StatusNoContent)
}

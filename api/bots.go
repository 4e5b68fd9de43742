package api

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/store"
)

// Bots is what the bot-detection endpoints need (F13, F14).
type Bots interface {
	FanClassification(ctx context.Context, fan uuid.UUID) (store.BotClassification, error)
	SetBotOverride(ctx context.Context, fan uuid.UUID, class bots.Class, note, by string) (store.BotClassification, error)
	ClearBotOverride(ctx context.Context, fan uuid.UUID, note, by string) (store.BotClassification, error)
	BotOverrideLog(ctx context.Context, fan uuid.UUID) ([]store.OverrideLogEntry, error)
	WatchReseller(ctx context.Context, fan uuid.UUID, note, by string) error
	UnwatchReseller(ctx context.Context, fan uuid.UUID) error
	WatchedResellers(ctx context.Context, orgID string) ([]store.WatchedReseller, error)
	FanKnownToOrg(ctx context.Context, orgID string, fan uuid.UUID) (bool, error)
}

const noFan = "no such fan for this organization"

// routeBots serves marketers fans' classifications, their overrides and the
// reseller watch list. A fan the organization has not seen (no activity or
// offer for its performers) is 404, as one that does not exist.
func (s *server) routeBots(mux *http.ServeMux) {
	if s.cfg.Bots == nil || s.cfg.Marketers == nil {
		return
	}
	viewer, marketer := s.withRole(store.RoleViewer), s.withRole(store.RoleMarketer)
	mux.HandleFunc("GET /v1/fans/{fan_id}/classification", viewer(s.getClassification))
	mux.HandleFunc("PUT /v1/fans/{fan_id}/classification", marketer(s.putClassification))
	mux.HandleFunc("DELETE /v1/fans/{fan_id}/classification", marketer(s.deleteClassification))
	mux.HandleFunc("GET /v1/resellers", viewer(s.listResellers))
	mux.HandleFunc("PUT /v1/resellers/{fan_id}", marketer(s.putReseller))
	mux.HandleFunc("DELETE /v1/resellers/{fan_id}", marketer(s.deleteReseller))
}

// orgFan resolves the path's fan for the principal's organization, or answers 404.
func (s *server) orgFan(w http.ResponseWriter, r *http.Request, p store.Principal) (uuid.UUID, bool) {
	fan, err := uuid.Parse(r.PathValue("fan_id"))
	if err != nil {
		writeProblem(w, http.StatusNotFound, noFan)
		return uuid.Nil, false
	}
	ok, err := s.cfg.Bots.FanKnownToOrg(r.Context(), p.OrgID, fan)
	if err != nil {
		s.marketerError(w, r, err, noFan)
		return uuid.Nil, false
	}
	if !ok {
		writeProblem(w, http.StatusNotFound, noFan)
	}
	return fan, ok
}

// actor names who changed something, for audit records: the organization and token, never a person.
func actor(p store.Principal) string { return p.OrgID + "/" + p.TokenID.String() }

// answerClassification answers the fan's current class and override log.
func (s *server) answerClassification(w http.ResponseWriter, r *http.Request, fan uuid.UUID) {
	c, err := s.cfg.Bots.FanClassification(r.Context(), fan)
	if err != nil {
		s.marketerError(w, r, err, noFan)
		return
	}
	s.writeClassification(w, r, fan, c)
}

func (s *server) writeClassification(w http.ResponseWriter, r *http.Request, fan uuid.UUID, c store.BotClassification) {
	log, err := s.cfg.Bots.BotOverrideLog(r.Context(), fan)
	if err != nil {
		s.marketerError(w, r, err, noFan)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"fan_id": fan, "classification": c, "overrides": log})
}

func (s *server) getClassification(w http.ResponseWriter, r *http.Request, p store.Principal) {
	fan, ok := s.orgFan(w, r, p)
	if !ok {
		return
	}
	s.answerClassification(w, r, fan)
}

// putClassification overrides a fan's class: {"class": "human", "note": "why"}.
func (s *server) putClassification(w http.ResponseWriter, r *http.Request, p store.Principal) {
	fan, ok := s.orgFan(w, r, p)
	if !ok {
		return
	}
	var body struct {
		Class bots.Class `json:"class"`
		Note  string     `json:"note"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	c, err := s.cfg.Bots.SetBotOverride(r.Context(), fan, body.Class, body.Note, actor(p))
	if err != nil {
		s.marketerError(w, r, err, noFan)
		return
	}
	s.writeClassification(w, r, fan, c)
}

// deleteClassification clears the override (?note=why): the evidence decides again.
func (s *server) deleteClassification(w http.ResponseWriter, r *http.Request, p store.Principal) {
	fan, ok := s.orgFan(w, r, p)
	if !ok {
		return
	}
	c, err := s.cfg.Bots.ClearBotOverride(r.Context(), fan, r.URL.Query().Get("note"), actor(p))
	if err != nil {
		s.marketerError(w, r, err, "this fan has no override")
		return
	}
	s.writeClassification(w, r, fan, c)
}

func (s *server) listResellers(w http.ResponseWriter, r *http.Request, p store.Principal) {
	list, err := s.cfg.Bots.WatchedResellers(r.Context(), p.OrgID)
	if err != nil {
		s.marketerError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"resellers": list})
}

// putReseller puts a fan on the watch list: {"note": "why"}.
func (s *server) putReseller(w http.ResponseWriter, r *http.Request, p store.Principal) {
	fan, ok := s.orgFan(w, r, p)
	if !ok {
		return
	}
	var body struct {
		Note string `json:"note"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if err := s.cfg.Bots.WatchReseller(r.Context(), fan, body.Note, actor(p)); err != nil {
		s.marketerError(w, r, err, noFan)
		return
	}
	s.answerClassification(w, r, fan)
}

func (s *server) deleteReseller(w http.ResponseWriter, r *http.Request, p store.Principal) {
	fan, ok := s.orgFan(w, r, p)
	if !ok {
		return
	}
	if err := s.cfg.Bots.UnwatchReseller(r.Context(), fan); err != nil {
		s.marketerError(w, r, err, "this fan is not on the watch list")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

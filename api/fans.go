package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/fans"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// Fans registers fans and keeps their consent (F1–F3). Partners reach a fan
// only through their own users' linked accounts.
type Fans interface {
	RegisterFan(ctx context.Context, r store.Registration) (uuid.UUID, bool, error)
	FanRecordByAccount(ctx context.Context, partnerID, userID string) (store.FanRecord, error)
	ConsentLedger(ctx context.Context, fan uuid.UUID) ([]store.LedgerEntry, error)
	SetConsent(ctx context.Context, partnerID, userID string, c fans.Consent, actor string) error
	WithdrawConsent(ctx context.Context, partnerID, userID, wording, actor string) error
	SetInAppConsent(ctx context.Context, c store.InAppConsent) error
	EraseFan(ctx context.Context, fan uuid.UUID, actor string) error
	CreateLinkCode(ctx context.Context, partnerID, userID string) (string, time.Time, error)
}

const maxBody = 64 << 10

func (s *server) routeFans(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/users/{user_id}", s.withPartner(s.putUser))
	mux.HandleFunc("GET /v1/users/{user_id}", s.withPartner(s.getUser))
	mux.HandleFunc("DELETE /v1/users/{user_id}", s.withPartner(s.eraseUser))
	mux.HandleFunc("PUT /v1/users/{user_id}/consent", s.withPartner(s.putConsent))
	mux.HandleFunc("DELETE /v1/users/{user_id}/consent", s.withPartner(s.withdrawConsent))
	mux.HandleFunc("POST /v1/users/{user_id}/link-codes", s.withPartner(s.createLinkCode))
	mux.HandleFunc("POST /v1/users/{user_id}/channel-consent", s.withPartner(s.setChannelConsent))
	if s.cfg.Explanations != nil && s.cfg.Scorers != nil {
		mux.HandleFunc("GET /v1/users/{user_id}/index/{performer_id}", s.withPartner(s.explainIndex))
	}
}

func (s *server) withPartner(h func(w http.ResponseWriter, r *http.Request, partnerID string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		partnerID, ok := s.partner(w, r)
		if !ok {
			return
		}
		h(w, r, partnerID)
	}
}

// invalid is a 422 body that lists every problem, each as a line ("field:
// reason") in Errors and split into its field and reason in Problems.
type invalid struct {
	problem
	Errors   []string       `json:"errors"`
	Problems []fieldProblem `json:"problems"`
}

// fieldProblem is one invalid field: its JSON path and what is wrong with it.
type fieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func writeInvalid(w http.ResponseWriter, err error) {
	lines := strings.Split(err.Error(), "\n")
	problems := make([]fieldProblem, len(lines))
	for i, l := range lines {
		field, reason, ok := strings.Cut(l, ": ")
		if !ok {
			field, reason = "", l
		}
		problems[i] = fieldProblem{Field: field, Reason: reason}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusUnprocessableEntity)
	_ = json.NewEncoder(w).Encode(invalid{
		problem:  problem{Title: "Unprocessable Entity", Status: http.StatusUnprocessableEntity, Detail: "the request has invalid fields"},
		Errors:   lines,
		Problems: problems,
	})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeBodyUpTo(w, r, v, maxBody)
}

// decodeBodyUpTo decodes a JSON body of at most limit bytes, refusing unknown fields.
func decodeBodyUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("decoding JSON body: %v", err))
		return false
	}
	return true
}

func (s *server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, http.StatusNotFound, "no fan is linked to this user at this partner")
		return
	}
	s.logger.ErrorContext(r.Context(), "serving fan request", slog.Any("error", err))
	writeProblem(w, http.StatusInternalServerError, "")
}

type registration struct {
	// Profile is required unless LinkCode is given, where leaving it out
	// keeps the profile the fan has.
	Profile *fans.Profile `json:"profile"`
	Consent fans.Consent  `json:"consent"`
	// LinkCode links the user to the fan another partner made the code for.
	LinkCode string `json:"link_code,omitempty"`
}

// putUser registers the partner's user as a fan, or updates the registration.
func (s *server) putUser(w http.ResponseWriter, r *http.Request, partnerID string) {
	var body registration
	if !decodeBody(w, r, &body) {
		return
	}
	userID := r.PathValue("user_id")
	errs := []error{body.Consent.Validate()}
	switch {
	case body.Profile != nil:
		errs = append(errs, body.Profile.Validate())
	case body.LinkCode == "":
		errs = append(errs, errors.New("profile: required unless link_code is given"))
	}
	if len(userID) > 256 {
		errs = append(errs, errors.New("user_id: at most 256 bytes"))
	}
	if err := errors.Join(errs...); err != nil {
		writeInvalid(w, err)
		return
	}
	fan, created, err := s.cfg.Fans.RegisterFan(r.Context(), store.Registration{
		PartnerID: partnerID, PartnerUserID: userID, Profile: body.Profile, Consent: body.Consent, Actor: "partner:" + partnerID,
		LinkCode: body.LinkCode,
	})
	switch {
	case errors.Is(err, store.ErrLinkCode):
		writeInvalid(w, fmt.Errorf("link_code: %w", err))
		return
	case errors.Is(err, store.ErrLinkedElsewhere):
		writeProblem(w, http.StatusConflict, "this user is linked to another fan; withdraw its consent first to link it to this one")
		return
	case err != nil:
		s.storeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]string{"fan_id": fan.String()})
}

// createLinkCode makes a one-time code with which the fan can link an account
// at another partner: POST /v1/users/{user_id}/link-codes.
func (s *server) createLinkCode(w http.ResponseWriter, r *http.Request, partnerID string) {
	code, expires, err := s.cfg.Fans.CreateLinkCode(r.Context(), partnerID, r.PathValue("user_id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"code": code, "expires_at": expires})
}

func (s *server) getUser(w http.ResponseWriter, r *http.Request, partnerID string) {
	rec, err := s.cfg.Fans.FanRecordByAccount(r.Context(), partnerID, r.PathValue("user_id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	ledger, err := s.cfg.Fans.ConsentLedger(r.Context(), rec.ID)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	// A partner sees the ledger entries of its own links only.
	own := ledger[:0]
	for _, e := range ledger {
		if e.PartnerID == partnerID {
			own = append(own, e)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"fan": rec, "consent_ledger": own})
}

func (s *server) putConsent(w http.ResponseWriter, r *http.Request, partnerID string) {
	var c fans.Consent
	if !decodeBody(w, r, &c) {
		return
	}
	if err := c.Validate(); err != nil {
		writeInvalid(w, err)
		return
	}
	if err := s.cfg.Fans.SetConsent(r.Context(), partnerID, r.PathValue("user_id"), c, "partner:"+partnerID); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) withdrawConsent(w http.ResponseWriter, r *http.Request, partnerID string) {
	wording := r.URL.Query().Get("wording")
	if wording == "" {
		wording = "consent withdrawn"
	}
	if err := s.cfg.Fans.WithdrawConsent(r.Context(), partnerID, r.PathValue("user_id"), wording, "partner:"+partnerID); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// channelConsent is a fan's opt-out of marketing messages, or opt back in,
// chosen in the partner's app.
type channelConsent struct {
	Change store.ConsentChange `json:"change"`
	// Channels are those the choice covers; absent, all of them.
	Channels []offers.Channel `json:"channels"`
	// Wording is what the app showed the fan when they chose.
	Wording string `json:"wording"`
}

// maxWording bounds the wording kept in the ledger: a sentence or a
// paragraph, not a document.
const maxWording = 2000

func (c *channelConsent) validate() error {
	var errs []error
	if c.Change != store.OptOut && c.Change != store.OptIn {
		errs = append(errs, errors.New("change: must be opt_out or opt_in"))
	}
	if c.Channels == nil {
		c.Channels = []offers.Channel{offers.ChannelSMS, offers.ChannelEmail, offers.ChannelPush}
	}
	if len(c.Channels) == 0 {
		errs = append(errs, errors.New("channels: at least one, or leave it out for all"))
	}
	seen := map[offers.Channel]bool{}
	for i, ch := range c.Channels {
		switch {
		case !ch.Valid():
			errs = append(errs, fmt.Errorf("channels[%d]: %q is not sms, email or push", i, ch))
		case seen[ch]:
			errs = append(errs, fmt.Errorf("channels[%d]: %s is listed twice", i, ch))
		}
		seen[ch] = true
	}
	switch {
	case strings.TrimSpace(c.Wording) == "":
		errs = append(errs, errors.New("wording: required: the text the fan saw when they chose is kept in the ledger"))
	case len(c.Wording) > maxWording:
		errs = append(errs, fmt.Errorf("wording: at most %d bytes", maxWording))
	}
	return errors.Join(errs...)
}

// setChannelConsent records a fan's in-app opt-out of (or back into)
// marketing on some or all channels: POST /v1/users/{user_id}/channel-consent.
// The number and address are suppressed (or the fan's own suppression
// lifted) and pushes turned off (or on) at once, one ledger entry per
// channel with the wording (F18): the next delivery sees it.
func (s *server) setChannelConsent(w http.ResponseWriter, r *http.Request, partnerID string) {
	var body channelConsent
	if !decodeBody(w, r, &body) {
		return
	}
	if err := body.validate(); err != nil {
		writeInvalid(w, err)
		return
	}
	err := s.cfg.Fans.SetInAppConsent(r.Context(), store.InAppConsent{
		PartnerID: partnerID, PartnerUserID: r.PathValue("user_id"), Channels: body.Channels, Change: body.Change,
		Wording: body.Wording, Actor: "partner:" + partnerID, At: s.cfg.Clock(),
	})
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// eraseUser erases the fan behind the partner's user, everywhere (F3).
func (s *server) eraseUser(w http.ResponseWriter, r *http.Request, partnerID string) {
	rec, err := s.cfg.Fans.FanRecordByAccount(r.Context(), partnerID, r.PathValue("user_id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if err := s.cfg.Fans.EraseFan(r.Context(), rec.ID, "partner:"+partnerID); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Explanations reads what a pair's index is made of (F6).
type Explanations interface {
	Contributions(ctx context.Context, fan uuid.UUID, performerID string) ([]scoring.Contribution, error)
	FanFact(ctx context.Context, fan uuid.UUID) (*scoring.FanFact, error)
	FanRuleStatuses(ctx context.Context, fan uuid.UUID, performerID string) ([]store.FanRuleStatus, error)
}

// explainIndex returns a user's index for a performer with each contribution
// and the event that earned it: GET /v1/users/{user_id}/index/{performer_id}.
func (s *server) explainIndex(w http.ResponseWriter, r *http.Request, partnerID string) {
	rec, err := s.cfg.Fans.FanRecordByAccount(r.Context(), partnerID, r.PathValue("user_id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	s.writeExplanation(w, r, rec.ID, r.PathValue("performer_id"))
}

// routeMarketerExplanations serves marketers the explanation of a fan's
// index for one of their organization's performers, by the fan's
// pseudonymous id (the one offers carry): what the console shows (F24).
func (s *server) routeMarketerExplanations(mux *http.ServeMux) {
	if s.cfg.Marketers == nil || s.cfg.Explanations == nil || s.cfg.Scorers == nil {
		return
	}
	mux.HandleFunc("GET /v1/performers/{id}/fans/{fan_id}/index", s.withRole(store.RoleViewer)(s.explainFanIndex))
}

// explainFanIndex: GET /v1/performers/{id}/fans/{fan_id}/index. Another
// organization's performer is 404, as one that does not exist.
func (s *server) explainFanIndex(w http.ResponseWriter, r *http.Request, p store.Principal) {
	performer := r.PathValue("id")
	if _, err := s.cfg.Marketers.OrgPerformerScoring(r.Context(), p.OrgID, performer); err != nil {
		s.marketerError(w, r, err, noPerformer)
		return
	}
	fan, err := uuid.Parse(r.PathValue("fan_id"))
	if err != nil {
		writeProblem(w, http.StatusNotFound, "no such fan")
		return
	}
	s.writeExplanation(w, r, fan, performer)
}

// writeExplanation answers a fan's index for a performer with each
// contribution, and each rule tier the fan crossed with its offer or the
// reason there was none.
func (s *server) writeExplanation(w http.ResponseWriter, r *http.Request, fan uuid.UUID, performer string) {
	scorer := s.cfg.Scorers.Scorer()
	profile, ok := scorer.Profile(performer)
	if !ok {
		writeProblem(w, http.StatusNotFound, "no such performer")
		return
	}
	contribs, err := s.cfg.Explanations.Contributions(r.Context(), fan, performer)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	fact, err := s.cfg.Explanations.FanFact(r.Context(), fan)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	rules, err := s.cfg.Explanations.FanRuleStatuses(r.Context(), fan, performer)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	at := s.cfg.Clock()
	body := map[string]any{
		"fan_id":       fan,
		"performer_id": performer,
		"profile_id":   profile.ID,
		"explanation":  scoring.Explain(profile, contribs, fact, at),
		// Each rule tier the fan crossed: the offer, or why none (F10).
		"rules": rules,
	}
	if s.cfg.Bots != nil {
		// Human, suspect or automated, with each reason's evidence (F14).
		c, err := s.cfg.Bots.FanClassification(r.Context(), fan)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		body["classification"] = c
	}
	writeJSON(w, http.StatusOK, body)
}

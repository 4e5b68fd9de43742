package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// Redemptions redeems offers and records their links being opened (F11).
type Redemptions interface {
	Redeem(ctx context.Context, r store.RedeemRequest) (store.Redemption, error)
	MarkOpened(ctx context.Context, offerID uuid.UUID, at time.Time) (store.OfferLink, error)
}

// TokenVerifier checks an offer token's signature and returns the offer and
// expiry it names; *offers.Signer is one.
type TokenVerifier interface {
	Verify(token string) (offerID uuid.UUID, expires time.Time, err error)
}

// routeRedemptions serves POST /v1/offers/redeem and the offer links, GET
// /o/{token}, when Redemptions and Signer are configured.
func (s *server) routeRedemptions(mux *http.ServeMux) {
	if s.cfg.Redemptions == nil || s.cfg.Signer == nil {
		return
	}
	mux.HandleFunc("POST /v1/offers/redeem", s.withPartner(s.redeem))
	mux.HandleFunc("GET /o/{token}", s.openOffer)
}

// refusal is how the API answers one of the errors tokens and redemptions end in.
type refusal struct {
	err    error
	status int
	code   string
	detail string
}

// refusals answer token and redemption errors, each with its own code. A
// missing offer and another fan's offer answer alike, so a partner learns
// nothing of offers that are not its user's.
var refusals = []refusal{
	{offers.ErrTokenMalformed, http.StatusBadRequest, "token_malformed", "the offer token is not one Crescendo makes"},
	{offers.ErrTokenUnknownKey, http.StatusUnauthorized, "token_unknown_key", "the offer token is signed with a key Crescendo does not hold"},
	{offers.ErrTokenSignature, http.StatusUnauthorized, "token_forged", "the offer token's signature does not verify"},
	{store.ErrNotFound, http.StatusNotFound, "offer_not_found", "no such offer for this user"},
	{store.ErrNotYourOffer, http.StatusNotFound, "offer_not_found", "no such offer for this user"},
	{store.ErrAlreadyRedeemed, http.StatusConflict, "already_redeemed", "the offer has been redeemed; each offer is redeemed once"},
	{store.ErrSoldOut, http.StatusConflict, "sold_out", "the offer's tier has no units left"},
	{store.ErrOfferExpired, http.StatusGone, "offer_expired", "the offer's termination time has passed"},
	{store.ErrOfferVoid, http.StatusGone, "offer_void", "the offer was never delivered and cannot be redeemed"},
}

// refuse answers err with its refusal, or 500 for an error that has none.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	for _, f := range refusals {
		if errors.Is(err, f.err) {
			writeCodedProblem(w, f.status, f.code, f.detail)
			return
		}
	}
	s.logger.ErrorContext(r.Context(), "serving offer request", slog.Any("error", err))
	writeCodedProblem(w, http.StatusInternalServerError, "internal", "")
}

type redeemRequest struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
}

// redemption is the body of a successful redemption.
type redemption struct {
	OfferID          uuid.UUID  `json:"offer_id"`
	RuleID           string     `json:"rule_id"`
	Tier             int        `json:"tier"`
	Perks            []string   `json:"perks"`
	PerformerID      string     `json:"performer_id"`
	ShowID           string     `json:"show_id"`
	SentAt           time.Time  `json:"sent_at"`
	OpenedAt         *time.Time `json:"opened_at"`
	RedeemedAt       time.Time  `json:"redeemed_at"`
	SentToOpenedMS   *int64     `json:"sent_to_opened_ms"`
	SentToRedeemedMS int64      `json:"sent_to_redeemed_ms"`
}

// redeem redeems an offer for the partner's user, who must be the offer's
// fan: POST /v1/offers/redeem {"token": "…", "user_id": "…"}.
func (s *server) redeem(w http.ResponseWriter, r *http.Request, partnerID string) {
	var body redeemRequest
	if !decodeBody(w, r, &body) {
		return
	}
	var missing []error
	if body.Token == "" {
		missing = append(missing, errors.New("token: required"))
	}
	if body.UserID == "" {
		missing = append(missing, errors.New("user_id: required"))
	}
	if err := errors.Join(missing...); err != nil {
		writeInvalid(w, err)
		return
	}
	offerID, expires, err := s.cfg.Signer.Verify(body.Token)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	fan, linked, err := s.cfg.Partners.FanByAccount(r.Context(), partnerID, body.UserID)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	if !linked {
		writeCodedProblem(w, http.StatusNotFound, "user_not_found", "no fan is linked to this user at this partner")
		return
	}
	red, err := s.cfg.Redemptions.Redeem(r.Context(), store.RedeemRequest{
		OfferID: offerID, Expires: expires, FanID: fan, PartnerID: partnerID, At: s.cfg.Clock(),
	})
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newRedemption(red))
}

// newRedemption is the answer to a redemption, with the reaction times.
func newRedemption(red store.Redemption) redemption {
	out := redemption{
		OfferID: red.OfferID, RuleID: red.RuleID, Tier: red.Tier, Perks: red.Perks, PerformerID: red.PerformerID,
		ShowID: red.ShowID, SentAt: red.SentAt, OpenedAt: red.OpenedAt, RedeemedAt: red.RedeemedAt,
		SentToRedeemedMS: red.SentToRedeemed.Milliseconds(),
	}
	if red.SentToOpened != nil {
		ms := red.SentToOpened.Milliseconds()
		out.SentToOpenedMS = &ms
	}
	return out
}

// offerLink is what GET /o/{token} shows.
type offerLink struct {
	OfferID      uuid.UUID  `json:"offer_id"`
	Status       string     `json:"status"`
	Tier         int        `json:"tier"`
	Perks        []string   `json:"perks"`
	Performer    string     `json:"performer"`
	Show         string     `json:"show"`
	ShowStartsAt time.Time  `json:"show_starts_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	OpenedAt     *time.Time `json:"opened_at"`
	RedeemedAt   *time.Time `json:"redeemed_at"`
}

// openOffer is the link in an offer's SMS or email: GET /o/{token}. The token
// is the credential. It records the first open (for reaction times) and shows
// the offer; an expired or void offer is refused like its redemption would be.
func (s *server) openOffer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	offerID, expires, err := s.cfg.Signer.Verify(r.PathValue("token"))
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	now := s.cfg.Clock()
	l, err := s.cfg.Redemptions.MarkOpened(r.Context(), offerID, now)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	switch {
	case l.Status == store.OfferFailed:
		s.refuse(w, r, store.ErrOfferVoid)
		return
	case l.Status == store.OfferExpired,
		l.Status != store.OfferRedeemed && (!now.Before(l.ExpiresAt) || !now.Before(expires)):
		s.refuse(w, r, store.ErrOfferExpired)
		return
	}
	writeJSON(w, http.StatusOK, offerLink{
		OfferID: l.OfferID, Status: l.Status, Tier: l.Tier, Perks: l.Perks, Performer: l.PerformerName,
		Show: l.ShowName, ShowStartsAt: l.ShowStartsAt, ExpiresAt: l.ExpiresAt, OpenedAt: l.OpenedAt, RedeemedAt: l.RedeemedAt,
	})
}

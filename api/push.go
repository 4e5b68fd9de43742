package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/store"
)

// routePush serves in-app push (F16): the stream partner apps hold open for
// their signed-in users, and partner backends' webhooks.
func (s *server) routePush(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/push/stream", s.pushStream)
	if s.cfg.StreamTokens != nil {
		mux.HandleFunc("POST /v1/push/stream-tokens", s.withPartner(s.createStreamToken))
	}
	mux.HandleFunc("PUT /v1/push/webhook", s.withPartner(s.putPushWebhook))
	mux.HandleFunc("GET /v1/push/webhook", s.withPartner(s.getPushWebhook))
	mux.HandleFunc("DELETE /v1/push/webhook", s.withPartner(s.deletePushWebhook))
}

// pushStream is the Server-Sent Events stream a partner app holds open for its
// signed-in user: GET /v1/push/stream?token=<stream token>, or with the
// partner's API key GET /v1/push/stream?user_id=<partner user id>. Each push
// is an event whose id is its sequence number; a stream opened with
// Last-Event-ID (or ?last_event_id=) first carries the fan's pushes after it.
func (s *server) pushStream(w http.ResponseWriter, r *http.Request) {
	fan, ok := s.streamFan(w, r)
	if !ok {
		return
	}
	after, resume, ok := lastEventID(r)
	if !ok {
		writeProblem(w, http.StatusBadRequest, "Last-Event-ID (or last_event_id) must be the id of an event this stream sent: a whole number")
		return
	}
	ctx := r.Context()
	var err error
	var st *push.Stream
	if resume {
		st, err = s.cfg.Push.OpenAfter(ctx, fan, after)
	} else {
		st, err = s.cfg.Push.Open(ctx, fan)
	}
	if errors.Is(err, push.ErrUnknownFan) {
		writeProblem(w, http.StatusNotFound, "no linked fan for this user at this partner")
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "opening push stream", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return
	}
	defer st.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// An id with no data sets the client's Last-Event-ID without an event: a
	// client that reconnects before any push arrives still resumes from here.
	head := ": connected\n"
	if cursor, ok := st.Cursor(); ok {
		head += "id: " + strconv.FormatInt(cursor, 10) + "\n"
	}
	if _, err := fmt.Fprint(w, head+"\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.Done():
			return // the fan was erased
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case <-st.Ready():
			msgs, err := st.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					// The client reconnects with its Last-Event-ID and loses nothing.
					s.logger.WarnContext(ctx, "reading pushes for a stream", slog.Any("error", err))
				}
				return
			}
			for _, m := range msgs {
				if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", m.ID, m.Event, m.Data); err != nil {
					return
				}
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// streamFan authenticates a stream's caller and returns the fan whose
// pushes it may read. A stream token (?token=, or as the bearer credential,
// since EventSource cannot set headers) names the partner, its user and the
// fan: the app holding it needs no API key. A partner's API key with
// ?user_id= is the partner's backend speaking for its user. Either way the
// account must be linked to the fan now.
func (s *server) streamFan(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	ctx := r.Context()
	userID := r.URL.Query().Get("user_id")
	token := r.URL.Query().Get("token")
	if bearerToken, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); token == "" && found && push.IsStreamToken(bearerToken) {
		token = bearerToken
	}
	if token == "" {
		partnerID, ok := s.partner(w, r)
		if !ok {
			return uuid.Nil, false
		}
		if userID == "" {
			writeProblem(w, http.StatusBadRequest, "query parameter user_id is required with a partner API key")
			return uuid.Nil, false
		}
		fan, linked, err := s.cfg.Partners.FanByAccount(ctx, partnerID, userID)
		if err != nil {
			s.logger.ErrorContext(ctx, "resolving push stream user", slog.Any("error", err))
			writeProblem(w, http.StatusInternalServerError, "")
			return uuid.Nil, false
		}
		if !linked {
			// A partner may only open streams for its own users who linked their account.
			writeProblem(w, http.StatusNotFound, "no linked fan for this user at this partner")
			return uuid.Nil, false
		}
		return fan, true
	}
	if s.cfg.StreamTokens == nil {
		rejectToken(w, "this server makes no stream tokens")
		return uuid.Nil, false
	}
	g, err := s.cfg.StreamTokens.Verify(token, s.cfg.Clock())
	switch {
	case errors.Is(err, push.ErrStreamTokenExpired):
		rejectToken(w, "the stream token has expired: ask the partner's backend for a new one")
		return uuid.Nil, false
	case err != nil:
		rejectToken(w, "not a stream token this server made")
		return uuid.Nil, false
	}
	if userID != "" && userID != g.UserID {
		writeProblem(w, http.StatusForbidden, "the stream token is another user's")
		return uuid.Nil, false
	}
	fan, linked, err := s.cfg.Partners.FanByAccount(ctx, g.PartnerID, g.UserID)
	if err != nil {
		s.logger.ErrorContext(ctx, "resolving push stream token", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return uuid.Nil, false
	}
	if !linked || fan != g.Fan {
		// Consent withdrawn, or the account linked to another fan since.
		writeProblem(w, http.StatusForbidden, "the stream token's account is no longer linked to its fan")
		return uuid.Nil, false
	}
	return fan, true
}

type streamTokenBody struct {
	UserID string `json:"user_id"`
}

// createStreamToken makes a stream token for one of the partner's linked
// users, for the partner's backend to hand to its app: POST
// /v1/push/stream-tokens {"user_id": "..."}.
func (s *server) createStreamToken(w http.ResponseWriter, r *http.Request, partnerID string) {
	var body streamTokenBody
	if !decodeBody(w, r, &body) {
		return
	}
	if body.UserID == "" {
		writeInvalid(w, errors.New("user_id: required"))
		return
	}
	fan, linked, err := s.cfg.Partners.FanByAccount(r.Context(), partnerID, body.UserID)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "resolving stream token user", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return
	}
	if !linked {
		writeProblem(w, http.StatusNotFound, "no linked fan for this user at this partner")
		return
	}
	token, expires := s.cfg.StreamTokens.Issue(partnerID, body.UserID, fan, s.cfg.Clock())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"token": token, "expires_at": expires.UTC()})
}

// lastEventID reads where a resuming stream starts: the Last-Event-ID header,
// which EventSource sends when it reconnects, or the last_event_id query
// parameter for clients that cannot set headers. It reports false for a
// value that is not a sequence number.
func lastEventID(r *http.Request) (after int64, resume, ok bool) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		v = strings.TrimSpace(r.URL.Query().Get("last_event_id"))
	}
	if v == "" {
		return 0, false, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, false
	}
	return n, true, true
}

type pushWebhookBody struct {
	URL string `json:"url"`
}

// pushWebhookView is a partner's webhook registration; the secret only in
// the answer that made it.
type pushWebhookView struct {
	URL       string    `json:"url"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func newPushWebhookView(h push.Webhook) pushWebhookView {
	return pushWebhookView{URL: h.URL, Secret: h.Secret, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt}
}

// putPushWebhook registers the partner's webhook, or replaces it, with a new
// signing secret that this answer shows once.
func (s *server) putPushWebhook(w http.ResponseWriter, r *http.Request, partnerID string) {
	var body pushWebhookBody
	if !decodeBody(w, r, &body) {
		return
	}
	hook, created, err := s.cfg.Push.RegisterWebhook(r.Context(), partnerID, body.URL)
	var bad *push.WebhookURLError
	if errors.As(err, &bad) {
		writeInvalid(w, errors.New("url: "+bad.Reason))
		return
	}
	if err != nil {
		s.pushWebhookError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, newPushWebhookView(hook))
}

func (s *server) getPushWebhook(w http.ResponseWriter, r *http.Request, partnerID string) {
	hook, err := s.cfg.Push.Webhook(r.Context(), partnerID)
	if err != nil {
		s.pushWebhookError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newPushWebhookView(hook))
}

func (s *server) deletePushWebhook(w http.ResponseWriter, r *http.Request, partnerID string) {
	if err := s.cfg.Push.DeleteWebhook(r.Context(), partnerID); err != nil {
		s.pushWebhookError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) pushWebhookError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "this partner has registered no push webhook")
	case errors.Is(err, push.ErrNotDurable):
		writeProblem(w, http.StatusNotImplemented, "this server keeps no pushes, so it sends no webhooks")
	default:
		s.logger.ErrorContext(r.Context(), "serving push webhook request", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
	}
}

package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/queue"
	"github.com/crescendo-hq/crescendo/store"
)

// Queues keeps shows' sales and the queues fans join for them (F12).
// Partners put their users in a queue; marketers set up the sales of their
// organization's shows, where a show of another organization is
// store.ErrNotFound, exactly as one that does not exist.
type Queues interface {
	JoinQueue(ctx context.Context, showID string, fan uuid.UUID, now time.Time) (store.QueueEntry, bool, error)
	QueueStatus(ctx context.Context, showID string, fan uuid.UUID) (store.QueueEntry, error)
	PutSale(ctx context.Context, orgID string, sale store.Sale) (created bool, err error)
	OrgSale(ctx context.Context, orgID, showID string) (store.SaleStatus, error)
}

// routeQueues serves the queues when Config.Queues is set: partners' routes
// always, marketers' sale routes when Config.Marketers is set too.
func (s *server) routeQueues(mux *http.ServeMux) {
	if s.cfg.Queues == nil {
		return
	}
	mux.HandleFunc("POST /v1/shows/{show_id}/queue", s.withPartner(s.joinQueue))
	mux.HandleFunc("GET /v1/shows/{show_id}/queue/{user_id}", s.withPartner(s.queueStatus))
	if s.cfg.Marketers == nil {
		return
	}
	mux.HandleFunc("GET /v1/shows/{show_id}/sale", s.withRole(store.RoleViewer)(s.getSale))
	mux.HandleFunc("PUT /v1/shows/{show_id}/sale", s.withRole(store.RoleMarketer)(s.putSale))
}

// codedProblem is a problem with a stable code clients can act on, where the
// status alone does not say which of several answers it is.
type codedProblem struct {
	problem
	Code string `json:"code"`
}

// Codes of the queue's problems.
const (
	codeNoSale          = "no_sale"
	codeSaleNotOpen     = "sale_not_open"
	codeSaleClosed      = "sale_closed"
	codeAutomatedBarred = "automated_barred"
	codeNotInQueue      = "not_in_queue"
	codeUnknownUser     = "unknown_user"
)

func writeCodedProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(codedProblem{
		problem: problem{Title: http.StatusText(status), Status: status, Detail: detail}, Code: code,
	})
}

// queueError answers the queue's errors with their codes, and reports
// whether err was one of them.
func queueError(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, store.ErrNoSale):
		writeCodedProblem(w, http.StatusNotFound, codeNoSale, "this show has no sale")
	case errors.Is(err, store.ErrSaleNotOpen):
		writeCodedProblem(w, http.StatusConflict, codeSaleNotOpen, err.Error())
	case errors.Is(err, store.ErrSaleClosed):
		writeCodedProblem(w, http.StatusConflict, codeSaleClosed, "the show has started; its queue is closed")
	case errors.Is(err, queue.ErrBarred):
		writeCodedProblem(w, http.StatusForbidden, codeAutomatedBarred,
			"this account is classified as automated, and this sale bars automated accounts")
	case errors.Is(err, store.ErrNotInQueue):
		writeCodedProblem(w, http.StatusNotFound, codeNotInQueue, "this user has not joined this show's queue")
	case errors.Is(err, store.ErrNotFound):
		writeCodedProblem(w, http.StatusNotFound, codeUnknownUser, "no fan is linked to this user at this partner")
	default:
		return false
	}
	return true
}

// queueEntry is a user's place in a show's queue, as partners see it.
type queueEntry struct {
	ShowID string `json:"show_id"`
	UserID string `json:"user_id"`
	// Queue is "tier-N", "general" or "relegated".
	Queue queue.Queue `json:"queue"`
	// Position is the 1-based place among everyone waiting; 0 once admitted.
	Position int64 `json:"position"`
	// Ahead is how many wait before the user.
	Ahead      int64      `json:"ahead"`
	Section    string     `json:"section,omitempty"`
	Admitted   bool       `json:"admitted"`
	AdmittedAt *time.Time `json:"admitted_at,omitempty"`
	JoinedAt   time.Time  `json:"joined_at"`
}

func newQueueEntry(userID string, e store.QueueEntry) queueEntry {
	return queueEntry{
		ShowID: e.ShowID, UserID: userID, Queue: e.Queue, Position: e.Position, Ahead: max(e.Position-1, 0),
		Section: e.Section, Admitted: e.Admitted(), AdmittedAt: e.AdmittedAt, JoinedAt: e.JoinedAt,
	}
}

// queueFan resolves the partner's user to their fan, or answers 404.
func (s *server) queueFan(w http.ResponseWriter, r *http.Request, partnerID, userID string) (uuid.UUID, bool) {
	fan, linked, err := s.cfg.Partners.FanByAccount(r.Context(), partnerID, userID)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "resolving queue user", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return uuid.Nil, false
	}
	if !linked {
		writeCodedProblem(w, http.StatusNotFound, codeUnknownUser, "no fan is linked to this user at this partner")
		return uuid.Nil, false
	}
	return fan, true
}

// joinQueue puts the partner's user in a show's queue: POST
// /v1/shows/{show_id}/queue with {"user_id": …}. 201 when it did, 200 with the
// same place when the user was in it already.
func (s *server) joinQueue(w http.ResponseWriter, r *http.Request, partnerID string) {
	var body struct {
		UserID string `json:"user_id"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.UserID == "" {
		writeInvalid(w, errors.New("user_id: required"))
		return
	}
	fan, ok := s.queueFan(w, r, partnerID, body.UserID)
	if !ok {
		return
	}
	showID := r.PathValue("show_id")
	e, created, err := s.cfg.Queues.JoinQueue(r.Context(), showID, fan, s.cfg.Clock())
	if err != nil {
		s.queueFailure(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/shows/"+showID+"/queue/"+body.UserID)
	writeJSON(w, status, newQueueEntry(body.UserID, e))
}

// queueStatus answers the user's place: GET /v1/shows/{show_id}/queue/{user_id}.
func (s *server) queueStatus(w http.ResponseWriter, r *http.Request, partnerID string) {
	userID := r.PathValue("user_id")
	fan, ok := s.queueFan(w, r, partnerID, userID)
	if !ok {
		return
	}
	e, err := s.cfg.Queues.QueueStatus(r.Context(), r.PathValue("show_id"), fan)
	if err != nil {
		s.queueFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newQueueEntry(userID, e))
}

func (s *server) queueFailure(w http.ResponseWriter, r *http.Request, err error) {
	if queueError(w, err) {
		return
	}
	s.logger.ErrorContext(r.Context(), "serving queue request", slog.Any("error", err))
	writeProblem(w, http.StatusInternalServerError, "")
}

// saleBody is the body of PUT /v1/shows/{show_id}/sale.
type saleBody struct {
	// OpensAt is when fans may join; absent: the show's on-sale start, or now.
	OpensAt   *time.Time `json:"opens_at"`
	BatchSize int        `json:"batch_size"`
	// BatchInterval is a Go duration: "30s", "2m".
	BatchInterval string `json:"batch_interval"`
	// Sections maps tiers ("0" for general) to seat sections.
	Sections map[string]string `json:"sections"`
	// Automated is "relegate" (the default) or "bar".
	Automated queue.Policy `json:"automated"`
	// Agents is "hold" (the default) or "bar".
	Agents queue.AgentPolicy `json:"agents"`
}

// settings reads the body's settings and lists every problem with them.
func (b saleBody) settings() (queue.Settings, error) {
	st := queue.Settings{BatchSize: b.BatchSize, Automated: b.Automated, Agents: cmp.Or(b.Agents, queue.AgentsHold)}
	if st.Automated == "" {
		st.Automated = queue.Relegate
	}
	var problems []error
	interval, err := time.ParseDuration(b.BatchInterval)
	if err != nil {
		problems = append(problems, fmt.Errorf("batch_interval: a duration such as \"30s\" is required; got %q", b.BatchInterval))
		interval = queue.MinInterval // reported; let Validate look at the rest
	}
	st.BatchInterval = interval
	if st.Sections, err = queue.ParseSections(b.Sections); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, st.Validate())
	return st, errors.Join(problems...)
}

// saleView is a sale as marketers see it, with its queues' counts.
type saleView struct {
	ShowID        string            `json:"show_id"`
	OpensAt       time.Time         `json:"opens_at"`
	BatchSize     int               `json:"batch_size"`
	BatchInterval string            `json:"batch_interval"`
	Sections      map[string]string `json:"sections"`
	Automated     queue.Policy      `json:"automated"`
	Agents        queue.AgentPolicy `json:"agents"`
	NextBatchAt   time.Time         `json:"next_batch_at"`
	LastBatchAt   *time.Time        `json:"last_batch_at,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
	Waiting       int64             `json:"waiting"`
	Admitted      int64             `json:"admitted"`
	Queues        []saleQueueView   `json:"queues"`
}

type saleQueueView struct {
	Queue    queue.Queue `json:"queue"`
	Section  string      `json:"section,omitempty"`
	Joined   int64       `json:"joined"`
	Admitted int64       `json:"admitted"`
	Waiting  int64       `json:"waiting"`
}

func newSaleView(st store.SaleStatus) saleView {
	v := saleView{
		ShowID: st.ShowID, OpensAt: st.OpensAt, BatchSize: st.BatchSize, BatchInterval: st.BatchInterval.String(),
		Sections: st.Sections.Strings(), Automated: st.Automated, Agents: st.Agents, NextBatchAt: st.NextBatchAt, LastBatchAt: st.LastBatchAt,
		UpdatedAt: st.UpdatedAt, Queues: make([]saleQueueView, len(st.Queues)),
	}
	for i, q := range st.Queues {
		v.Queues[i] = saleQueueView{Queue: q.Queue, Section: q.Section, Joined: q.Joined, Admitted: q.Admitted, Waiting: q.Waiting}
		v.Waiting += q.Waiting
		v.Admitted += q.Admitted
	}
	return v
}

const noShow = "no such show in this organization"

// getSale answers the sale of one of the organization's shows with its
// queues' counts: GET /v1/shows/{show_id}/sale.
func (s *server) getSale(w http.ResponseWriter, r *http.Request, p store.Principal) {
	st, err := s.cfg.Queues.OrgSale(r.Context(), p.OrgID, r.PathValue("show_id"))
	if err != nil {
		s.saleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newSaleView(st))
}

// putSale creates or replaces the sale of one of the organization's shows:
// PUT /v1/shows/{show_id}/sale.
func (s *server) putSale(w http.ResponseWriter, r *http.Request, p store.Principal) {
	var body saleBody
	if !decodeBody(w, r, &body) {
		return
	}
	settings, err := body.settings()
	if err != nil {
		writeInvalid(w, err)
		return
	}
	sale := store.Sale{ShowID: r.PathValue("show_id"), Settings: settings}
	if body.OpensAt != nil {
		sale.OpensAt = *body.OpensAt
	}
	created, err := s.cfg.Queues.PutSale(r.Context(), p.OrgID, sale)
	if err != nil {
		s.saleError(w, r, err)
		return
	}
	st, err := s.cfg.Queues.OrgSale(r.Context(), p.OrgID, sale.ShowID)
	if err != nil {
		s.saleError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, newSaleView(st))
}

// saleError answers a marketer's sale request's error: 404 with code no_sale
// for one of its shows without a sale, else as marketerError does (404 for a
// show the organization does not own, 422 for invalid settings).
func (s *server) saleError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNoSale) {
		writeCodedProblem(w, http.StatusNotFound, codeNoSale, "this show has no sale yet; PUT one")
		return
	}
	s.marketerError(w, r, err, noShow)
}

package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/ingest"
)

// Ingester takes partners' batches of events (ingest.Service).
type Ingester interface {
	RotateSecret(ctx context.Context, partnerID string) (string, error)
	Verify(ctx context.Context, partnerID, timestamp, signature string, body []byte) error
	Handle(ctx context.Context, partnerID, key string, body []byte) (ingest.Answer, error)
}

// maxBatchBytes bounds a batch's body: 500 events of a few kilobytes.
const maxBatchBytes = 4 << 20

func (s *server) routeIngest(mux *http.ServeMux) {
	if s.cfg.Ingest == nil {
		return
	}
	mux.HandleFunc("POST /v1/events", s.withPartner(s.postEvents))
	mux.HandleFunc("POST /v1/events/signing-secret", s.withPartner(s.rotateIngestSecret))
}

// rotateIngestSecret makes the partner's batch signing secret, replacing any
// earlier one at once; the answer is the only place it is ever shown.
func (s *server) rotateIngestSecret(w http.ResponseWriter, r *http.Request, partnerID string) {
	secret, err := s.cfg.Ingest.RotateSecret(r.Context(), partnerID)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "making an ingestion secret", slog.String("partner", partnerID), slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"secret": secret})
}

// postEvents takes a signed batch of CloudEvents (F23): POST /v1/events with
// Content-Type application/cloudevents-batch+json, Crescendo-Timestamp,
// Crescendo-Signature and Idempotency-Key.
func (s *server) postEvents(w http.ResponseWriter, r *http.Request, partnerID string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != events.BatchContentType {
		writeProblem(w, http.StatusUnsupportedMediaType, "Content-Type must be "+events.BatchContentType)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > 255 {
		writeProblem(w, http.StatusBadRequest, "an Idempotency-Key header of 1 to 255 characters is required")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBatchBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "a batch may be at most "+strconv.Itoa(maxBatchBytes)+" bytes")
			return
		}
		writeProblem(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if err := s.cfg.Ingest.Verify(r.Context(), partnerID, r.Header.Get("Crescendo-Timestamp"), r.Header.Get("Crescendo-Signature"), body); err != nil {
		s.ingestError(w, r, partnerID, err)
		return
	}
	answer, err := s.cfg.Ingest.Handle(r.Context(), partnerID, key, body)
	if err != nil {
		s.ingestError(w, r, partnerID, err)
		return
	}
	if answer.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(answer.Status)
	_, _ = w.Write(answer.Body)
}

func (s *server) ingestError(w http.ResponseWriter, r *http.Request, partnerID string, err error) {
	var limited *ingest.RateLimited
	switch {
	case errors.Is(err, ingest.ErrSignature), errors.Is(err, ingest.ErrNoSecret):
		w.Header().Set("WWW-Authenticate", `Crescendo-Signature realm="crescendo"`)
		writeProblem(w, http.StatusUnauthorized, err.Error())
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(limited.RetryAfter.Seconds()))))
		writeProblem(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, events.ErrBatch):
		writeProblem(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ingest.ErrKeyReused):
		writeProblem(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, ingest.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusConflict, err.Error())
	default:
		s.logger.ErrorContext(r.Context(), "ingesting a batch", slog.String("partner", partnerID), slog.Any("error", err))
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "the batch was not taken; retry it with the same Idempotency-Key")
	}
}

package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/crescendo-hq/crescendo/store"
)

// Jobs is what the operators' job endpoints need (F20): the run history and
// a way to run a job now under the same once-across-replicas guard.
type Jobs interface {
	JobNames() []string
	JobRuns(ctx context.Context, job string, limit int) ([]store.JobRun, error)
	// RunJobNow runs the job here unless another replica is running it
	// (ErrJobBusy) or it is no job (ErrNoJob), and returns its recorded run,
	// with the job's own error when it failed.
	RunJobNow(ctx context.Context, name string) (store.JobRun, error)
}

// ErrJobBusy and ErrNoJob are what a Jobs implementation answers for a job
// that runs elsewhere right now and for a name that is no job.
var (
	ErrJobBusy = errors.New("the job is running on another replica")
	ErrNoJob   = errors.New("no such job")
)

// routeJobs serves operators, who authenticate with OPERATOR_TOKEN: jobs
// span every organization, so no marketer token reaches them.
func (s *server) routeJobs(mux *http.ServeMux) {
	if s.cfg.Jobs == nil {
		return
	}
	mux.HandleFunc("GET /v1/jobs", s.withOperator(s.listJobs))
	mux.HandleFunc("GET /v1/jobs/runs", s.withOperator(s.listJobRuns))
	mux.HandleFunc("POST /v1/jobs/{name}/run", s.withOperator(s.runJob))
}

func (s *server) withOperator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(w, r, "the operator token (OPERATOR_TOKEN) is required as a bearer token")
		if !ok {
			return
		}
		if s.cfg.OperatorToken == "" {
			writeProblem(w, http.StatusForbidden, "the operator API is off: OPERATOR_TOKEN is not set on this server")
			return
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.OperatorToken)) != 1 {
			rejectToken(w, "not the operator token")
			return
		}
		h(w, r)
	}
}

type jobRunView struct {
	ID         int64      `json:"id"`
	Job        string     `json:"job"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Outcome    string     `json:"outcome"`
	Rows       int64      `json:"rows"`
	Error      string     `json:"error,omitempty"`
	Scheduled  bool       `json:"scheduled"`
	Instance   string     `json:"instance"`
}

func viewRun(j store.JobRun) jobRunView {
	return jobRunView{ID: j.ID, Job: j.Job, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, Outcome: j.Outcome, Rows: j.Rows, Error: j.Error,
		Scheduled: j.Scheduled, Instance: j.Instance}
}

func (s *server) listJobs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"jobs": s.cfg.Jobs.JobNames()})
}

func (s *server) listJobRuns(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeProblem(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		limit = n
	}
	runs, err := s.cfg.Jobs.JobRuns(r.Context(), r.URL.Query().Get("job"), limit)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "reading job runs", slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return
	}
	out := make([]jobRunView, len(runs))
	for i, j := range runs {
		out[i] = viewRun(j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

// runJob runs a job now and answers its recorded run; a run is held to the
// request, so a client that goes away cancels it.
func (s *server) runJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	j, err := s.cfg.Jobs.RunJobNow(r.Context(), name)
	switch {
	case errors.Is(err, ErrNoJob):
		writeCodedProblem(w, http.StatusNotFound, "no_such_job", "no job named "+strconv.Quote(name))
		return
	case errors.Is(err, ErrJobBusy):
		writeCodedProblem(w, http.StatusConflict, "job_running_elsewhere", "the job is running on another replica; its run is recorded there")
		return
	}
	if j.ID == 0 {
		s.logger.ErrorContext(r.Context(), "running a job by hand", slog.String("job", name), slog.Any("error", err))
		writeProblem(w, http.StatusInternalServerError, "")
		return
	}
	status := http.StatusOK
	if err != nil {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, viewRun(j))
}

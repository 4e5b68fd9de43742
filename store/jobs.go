package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/schedules"
)

// ErrJobBusy is returned by RunJob when another process is running the job.
var ErrJobBusy = errors.New("job is running elsewhere")

// ErrJobServed is returned by RunJob for a scheduled run whose activation
// another process already ran; it is a kind of ErrJobBusy.
var ErrJobServed = fmt.Errorf("%w: this activation of its schedule already ran", ErrJobBusy)

// RunJob runs fn at most once at a time across every process sharing the
// database, holding a transaction-scoped advisory lock: a process that dies
// releases it with its connection, so it never blocks the next run. A
// scheduled run also runs once per activation of the schedule, however many
// replicas fire for it: holding the lock, it runs only if the activation after
// the last scheduled run's start has come. Each run is recorded in job_runs
// with its outcome and the rows fn reports it touched; RunJob returns its id.
func (s *Store) RunJob(ctx context.Context, run schedules.Run, fn func(ctx context.Context) (int64, error)) (int64, error) {
	name, now := run.Job, run.Now
	if now == nil {
		now = time.Now
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("starting job %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	got, err := tryJobLock(ctx, tx, name)
	if err != nil {
		return 0, err
	}
	if !got {
		return 0, ErrJobBusy
	}
	// Holding the lock proves no process is running this job, so any run still
	// marked running belongs to a process that died mid-run: close it rather
	// than leave the history claiming it is still going.
	if _, err := closeAbandoned(ctx, s.pool, name, now()); err != nil {
		return 0, err
	}
	if run.Scheduled && run.Next != nil {
		var last *time.Time
		if err := s.pool.QueryRow(ctx, `SELECT max(started_at) FROM job_runs WHERE job = $1 AND scheduled`, name).Scan(&last); err != nil {
			return 0, fmt.Errorf("reading job %s's last run: %w", name, err)
		}
		if last != nil && run.Next(*last).After(now()) {
			return 0, ErrJobServed
		}
	}
	var runID int64
	// The run row is written outside the lock's transaction so it survives a failed run.
	if err := s.pool.QueryRow(ctx, `INSERT INTO job_runs (job, started_at, scheduled, instance) VALUES ($1, $2, $3, $4) RETURNING id`,
		name, now(), run.Scheduled, run.Instance).Scan(&runID); err != nil {
		return 0, fmt.Errorf("recording job %s: %w", name, err)
	}
	rows, runErr := s.holdingLock(ctx, tx, name, fn)
	outcome, msg := "ok", ""
	if runErr != nil {
		outcome, msg = "error", runErr.Error()
	}
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE job_runs SET finished_at = $2, outcome = $3, rows = $4, error = NULLIF($5, '')
		WHERE id = $1`, runID, now(), outcome, rows, msg); err != nil {
		return runID, errors.Join(runErr, fmt.Errorf("recording job %s outcome: %w", name, err))
	}
	return runID, runErr
}

// JobRun is one recorded run of a job.
type JobRun struct {
	ID         int64
	Job        string
	StartedAt  time.Time
	FinishedAt *time.Time
	Outcome    string
	Rows       int64
	Error      string
	// Scheduled tells a run its schedule started from one asked by hand.
	Scheduled bool
	// Instance names the process that ran it.
	Instance string
}

// JobRuns returns the latest runs of job (every job when empty), newest first.
func (s *Store) JobRuns(ctx context.Context, job string, limit int) ([]JobRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, job, started_at, finished_at, outcome, rows, COALESCE(error, ''), scheduled, instance
		FROM job_runs WHERE $2 = '' OR job = $2 ORDER BY started_at DESC, id DESC LIMIT $1`, limit, job)
	if err != nil {
		return nil, fmt.Errorf("reading job runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[JobRun])
	if err != nil {
		return nil, fmt.Errorf("reading job runs: %w", err)
	}
	return out, nil
}

// JobRunByID returns one recorded run.
func (s *Store) JobRunByID(ctx context.Context, id int64) (JobRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, job, started_at, finished_at, outcome, rows, COALESCE(error, ''), scheduled, instance
		FROM job_runs WHERE id = $1`, id)
	if err != nil {
		return JobRun{}, fmt.Errorf("reading job run %d: %w", id, err)
	}
	run, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[JobRun])
	if err != nil {
		return JobRun{}, fmt.Errorf("reading job run %d: %w", id, err)
	}
	return run, nil
}

// jobHeartbeat is how often a running job touches its lock's transaction.
// The pool's idle_in_transaction_session_timeout (30 s) ends the transaction,
// and so frees the lock, of a process that stopped answering without
// dying; a live one keeps it by these heartbeats.
const jobHeartbeat = 10 * time.Second

// holdingLock runs fn while keeping the lock's transaction alive. Losing the
// transaction means losing the lock, so fn's context is cancelled then: another
// replica may start the job, and this run must not go on beside it.
func (s *Store) holdingLock(ctx context.Context, tx pgx.Tx, name string, fn func(ctx context.Context) (int64, error)) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		t := time.NewTicker(jobHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
					cancel(fmt.Errorf("losing job %s's lock: %w", name, err))
					return
				}
			}
		}
	}()
	n, err := fn(ctx)
	close(done)
	<-beat
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(err, cause)
	}
	return n, err
}

// tryJobLock takes, for tx's lifetime, the advisory lock that a job's runs
// hold, unless another process holds it.
func tryJobLock(ctx context.Context, tx pgx.Tx, job string) (bool, error) {
	h := fnv.New64a()
	h.Write([]byte("job:" + job))
	var got bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", int64(h.Sum64())).Scan(&got); err != nil {
		return false, fmt.Errorf("locking job %s: %w", job, err)
	}
	return got, nil
}

// closeAbandoned marks the job's runs still recorded running as abandoned;
// the caller holds the job's lock, which proves their processes are gone.
func closeAbandoned(ctx context.Context, db execer, job string, now time.Time) (int64, error) {
	tag, err := db.Exec(ctx, `UPDATE job_runs SET outcome = 'abandoned', finished_at = $2,
		error = 'the process running it stopped before it finished' WHERE job = $1 AND outcome = 'running'`, job, now)
	if err != nil {
		return 0, fmt.Errorf("closing abandoned runs of job %s: %w", job, err)
	}
	return tag.RowsAffected(), nil
}

// CloseAbandonedRuns marks abandoned every run still recorded running whose
// job's lock nobody holds: its process died mid-run. A job's next run does
// this for its own runs; this sweep does it for jobs that run seldom, so the
// history does not claim for a day that a dead process is working.
func (s *Store) CloseAbandonedRuns(ctx context.Context, now time.Time) (int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT job FROM job_runs WHERE outcome = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("reading running jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("reading running jobs: %w", err)
	}
	var closed int64
	for _, job := range jobs {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			free, err := tryJobLock(ctx, tx, job)
			if err != nil || !free {
				return err
			}
			n, err := closeAbandoned(ctx, tx, job, now)
			closed += n
			return err
		})
		if err != nil {
			return closed, err
		}
	}
	return closed, nil
}

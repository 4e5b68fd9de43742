package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/schedules"
	"github.com/crescendo-hq/crescendo/store"
)

// operatorJobs serves the operators' job endpoints from the run history in
// Postgres and this process's scheduler, whose runs take the same advisory
// lock as scheduled ones: a run by hand is still once across replicas.
type operatorJobs struct {
	st    *store.Store
	sched *schedules.Scheduler
}

func (j operatorJobs) JobNames() []string { return j.sched.Names() }

func (j operatorJobs) JobRuns(ctx context.Context, job string, limit int) ([]store.JobRun, error) {
	return j.st.JobRuns(ctx, job, limit)
}

func (j operatorJobs) RunJobNow(ctx context.Context, name string) (store.JobRun, error) {
	id, err := j.sched.RunNow(ctx, name)
	switch {
	case errors.Is(err, schedules.ErrUnknownJob):
		return store.JobRun{}, api.ErrNoJob
	case isJobBusy(err):
		return store.JobRun{}, api.ErrJobBusy
	case id == 0:
		return store.JobRun{}, err
	}
	run, rerr := j.st.JobRunByID(ctx, id)
	return run, errors.Join(err, rerr)
}

// recomputeIndex asks every partition owner to recompute and waits, up to
// patience, until each partition the group owns has answered. A partition
// without an owner answers when one takes it.
func recomputeIndex(ctx context.Context, st *store.Store, group, topic string, patience time.Duration) (int64, error) {
	req, err := st.RequestRecompute(ctx, time.Now())
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		done, total, pairs, err := st.RecomputeProgress(ctx, req, group, topic)
		if err == nil && done >= total {
			return pairs, nil
		}
		select {
		case <-ctx.Done():
			return pairs, errors.Join(err, fmt.Errorf("%d of %d partitions recomputed within %s; the rest will when their owners read on: %w",
				done, total, patience, context.Cause(ctx)))
		case <-poll.C:
		}
	}
}

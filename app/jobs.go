package app

import (
	"context"
	"errors"

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

// Package schedules runs periodic jobs on cron expressions (robfig/cron/v3).
// Every run goes through a Runner that makes it run once across all replicas
// and records it; a panicking job is recovered, an overrunning one is skipped,
// and each run's context is cancelled on shutdown.
package schedules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Runner runs fn once across replicas and records the run, returning the
// run's id. It returns busy errors (see Config.IsBusy) when another replica
// holds the job, or already served this activation of its schedule.
type Runner interface {
	RunJob(ctx context.Context, run Run, fn func(ctx context.Context) (int64, error)) (int64, error)
}

// Run is one run a Scheduler asks of its Runner.
type Run struct {
	Job string
	// Scheduled is true for a run its schedule started, false for one asked by hand.
	Scheduled bool
	// Next is the job's schedule: the first activation after t. Every
	// replica's cron fires for the same activation; a runner serves it once by
	// skipping a scheduled run when Next(start of the last scheduled run) is
	// still ahead, that is when this activation was already served.
	Next func(t time.Time) time.Time
	// Instance names the process, recorded with the run.
	Instance string
	Now      func() time.Time
}

// Job is a periodic job.
type Job struct {
	Name string
	// Spec is a cron expression (five fields, or descriptors such as "@every 10s").
	Spec string
	// Run does the work and returns how many rows it touched.
	Run func(ctx context.Context) (int64, error)
}

// Config configures a Scheduler.
type Config struct {
	Jobs     []Job
	Runner   Runner
	Location *time.Location // time zone of the cron expressions; default UTC
	// IsBusy reports whether an error means another replica is running the job.
	IsBusy func(error) bool
	Logger *slog.Logger
	Clock  func() time.Time
	// Instance names this process in the run history; default host/pid.
	Instance string
}

// Scheduler runs jobs on their schedules.
type Scheduler struct {
	cfg    Config
	cron   *cron.Cron
	logger *slog.Logger
	jobs   map[string]Job
	next   map[string]func(time.Time) time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards stopped and wg.Add against Stop's wg.Wait
	stopped bool
}

// ErrStopped is returned by RunNow once Stop has been called.
var ErrStopped = errors.New("scheduler is stopped")

// New validates every job's schedule and returns a scheduler; Start starts it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Runner == nil {
		return nil, errors.New("schedules: Runner is required")
	}
	cfg.Location = cmp.Or(cfg.Location, time.UTC)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.IsBusy == nil {
		cfg.IsBusy = func(error) bool { return false }
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		cfg.Instance = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	logger := cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "scheduler"))
	s := &Scheduler{cfg: cfg, logger: logger, jobs: make(map[string]Job), next: make(map[string]func(time.Time) time.Time)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cron = cron.New(cron.WithLocation(cfg.Location), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	var errs []error
	for _, j := range cfg.Jobs {
		if j.Name == "" || j.Run == nil {
			errs = append(errs, fmt.Errorf("job %q: a name and a Run func are required", j.Name))
			continue
		}
		if _, dup := s.jobs[j.Name]; dup {
			errs = append(errs, fmt.Errorf("job %q: defined twice", j.Name))
			continue
		}
		s.jobs[j.Name] = j
		sched, err := parser.Parse(j.Spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %q: parsing schedule %q: %w", j.Name, j.Spec, err))
			continue
		}
		// cron reads a spec without a CRON_TZ of its own in the zone of the
		// time it is given, which for cron's own runs is the scheduler's.
		s.next[j.Name] = func(t time.Time) time.Time { return sched.Next(t.In(cfg.Location)) }
		s.cron.Schedule(sched, cron.FuncJob(func() { _, _ = s.run(s.ctx, j, true) }))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// WithSpecs returns jobs with the schedules in specs (job name → cron
// expression) in place of their own, so operators can move any job without
// a release. A name that is no job is an error, so a typo is not silently
// ignored.
func WithSpecs(jobs []Job, specs map[string]string) ([]Job, error) {
	out := slices.Clone(jobs)
	known := make(map[string]bool, len(out))
	for i := range out {
		known[out[i].Name] = true
		if spec, ok := specs[out[i].Name]; ok {
			out[i].Spec = spec
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		if !known[name] {
			errs = append(errs, fmt.Errorf("no job named %q", name))
		}
	}
	return out, errors.Join(errs...)
}

// Start starts the schedules.
func (s *Scheduler) Start() { s.cron.Start() }

// ErrUnknownJob is RunNow's answer for a name that is no job.
var ErrUnknownJob = errors.New("no such job")

// Names lists the jobs, sorted.
func (s *Scheduler) Names() []string { return slices.Sorted(maps.Keys(s.jobs)) }

// RunNow runs a job by name at once, under the same once-across-replicas
// guard, and returns its run's id.
func (s *Scheduler) RunNow(ctx context.Context, name string) (int64, error) {
	j, ok := s.jobs[name]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownJob, name)
	}
	return s.run(ctx, j, false)
}

// parser is cron's standard one (five fields and descriptors), as cron.New uses.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (s *Scheduler) run(ctx context.Context, j Job, scheduled bool) (id int64, err error) {
	// A run must not start once Stop waits: WaitGroup.Add racing Wait is a misuse.
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return 0, ErrStopped
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	// Shutdown cancels every run, including those started by RunNow with their own ctx.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	guarded := func(ctx context.Context) (n int64, err error) {
		// cron's default chain recovers nothing: a panicking job would kill the process.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("job panicked: %v\n%s", r, debug.Stack())
			}
		}()
		return j.Run(ctx)
	}
	id, err = s.cfg.Runner.RunJob(ctx, Run{Job: j.Name, Scheduled: scheduled, Next: s.next[j.Name],
		Instance: s.cfg.Instance, Now: s.cfg.Clock}, guarded)
	switch {
	case err == nil:
		s.logger.DebugContext(ctx, "job ran", slog.String("job", j.Name))
	case s.cfg.IsBusy(err):
		s.logger.DebugContext(ctx, "job running elsewhere", slog.String("job", j.Name))
	default:
		s.logger.ErrorContext(ctx, "running job", slog.String("job", j.Name), slog.Any("error", err))
	}
	return id, err
}

// Stop stops starting jobs and waits for running ones until ctx ends, then
// cancels them and waits for them to return.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	done := s.cron.Stop()
	// Runs started by hand (RunNow) are not cron's: wait for those too, up
	// to the same deadline, before cancelling anything.
	finished := make(chan struct{})
	go func() {
		<-done.Done()
		s.wg.Wait()
		close(finished)
	}()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = fmt.Errorf("waiting for running jobs: %w", ctx.Err())
	}
	s.cancel()
	s.wg.Wait()
	return err
}

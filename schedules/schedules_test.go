package schedules

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recordingRunner runs jobs in-process and records what ran.
type recordingRunner struct {
	mu   sync.Mutex
	runs []string
	errs []error
	last Run
}

func (r *recordingRunner) RunJob(ctx context.Context, run Run, fn func(context.Context) (int64, error)) (int64, error) {
	_, err := fn(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, run.Job)
	r.errs = append(r.errs, err)
	r.last = run
	return int64(len(r.runs)), err
}

func TestRunNowRecoversPanics(t *testing.T) {
	r := &recordingRunner{}
	s, err := New(Config{Runner: r, Jobs: []Job{
		{Name: "boom", Spec: "@every 1h", Run: func(context.Context) (int64, error) { panic("kaboom") }},
		{Name: "ok", Spec: "@every 1h", Run: func(context.Context) (int64, error) { return 3, nil }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RunNow(t.Context(), "boom")
	if err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("panic not turned into an error: %v", err)
	}
	if _, err := s.RunNow(t.Context(), "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunNow(t.Context(), "missing"); err == nil {
		t.Fatal("unknown job ran")
	}
	if len(r.runs) != 2 || r.runs[0] != "boom" || r.runs[1] != "ok" {
		t.Fatalf("runs = %v", r.runs)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadSchedules(t *testing.T) {
	_, err := New(Config{Runner: &recordingRunner{}, Jobs: []Job{
		{Name: "a", Spec: "not a cron", Run: func(context.Context) (int64, error) { return 0, nil }},
		{Name: "a", Spec: "@every 1m", Run: func(context.Context) (int64, error) { return 0, nil }},
	}})
	if err == nil || !strings.Contains(err.Error(), `parsing schedule "not a cron"`) || !strings.Contains(err.Error(), "defined twice") {
		t.Fatalf("err = %v", err)
	}
}

func TestStopCancelsRunningJobsAfterDeadline(t *testing.T) {
	started := make(chan struct{})
	s, err := New(Config{Runner: &recordingRunner{}, Jobs: []Job{{Name: "slow", Spec: "@every 1h",
		Run: func(ctx context.Context) (int64, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	errc := make(chan error, 1)
	go func() { _, err := s.RunNow(context.Background(), "slow"); errc <- err }()
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // deadline already passed: Stop must cancel the job rather than wait forever
	_ = s.Stop(ctx)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("job error = %v, want context.Canceled", err)
	}
}

func TestRunNowAfterStopRefuses(t *testing.T) {
	r := &recordingRunner{}
	s, err := New(Config{Runner: r, Jobs: []Job{{Name: "ok", Spec: "@every 1h",
		Run: func(context.Context) (int64, error) { return 1, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunNow(t.Context(), "ok"); !errors.Is(err, ErrStopped) {
		t.Fatalf("RunNow after Stop = %v, want ErrStopped", err)
	}
	if len(r.runs) != 0 {
		t.Fatalf("runs after Stop = %v", r.runs)
	}
}

// TestWithSpecsReplacesSchedulesAndRefusesUnknownJobs: operators move jobs
// by name; a misspelt name is an error, not a job that silently keeps its
// default.
func TestWithSpecsReplacesSchedulesAndRefusesUnknownJobs(t *testing.T) {
	noop := func(context.Context) (int64, error) { return 0, nil }
	jobs := []Job{{Name: "a", Spec: "@hourly", Run: noop}, {Name: "b", Spec: "@daily", Run: noop}}
	got, err := WithSpecs(jobs, map[string]string{"b": "CRON_TZ=Europe/Berlin 0 3 * * *"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Spec != "@hourly" || got[1].Spec != "CRON_TZ=Europe/Berlin 0 3 * * *" || jobs[1].Spec != "@daily" {
		t.Fatalf("specs %q, %q (input now %q)", got[0].Spec, got[1].Spec, jobs[1].Spec)
	}
	if _, err := WithSpecs(jobs, map[string]string{"bee": "@daily"}); err == nil || !strings.Contains(err.Error(), `"bee"`) {
		t.Fatalf("unknown job: %v", err)
	}
	// A bad expression is refused when the scheduler is built.
	bad, err := WithSpecs(jobs, map[string]string{"a": "every so often"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Runner: &recordingRunner{}, Jobs: bad}); err == nil || !strings.Contains(err.Error(), `job "a"`) {
		t.Fatalf("bad expression: %v", err)
	}
}

// TestStopWaitsForRunningJobsUntilTheDeadline: a job started by hand that
// finishes before the deadline is waited for, not cancelled.
func TestStopWaitsForRunningJobsUntilTheDeadline(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s, err := New(Config{Runner: &recordingRunner{}, Jobs: []Job{{Name: "steady", Spec: "@every 1h",
		Run: func(ctx context.Context) (int64, error) {
			close(started)
			select {
			case <-release:
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	errc := make(chan error, 1)
	go func() { _, err := s.RunNow(context.Background(), "steady"); errc <- err }()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(t.Context()) }() // no deadline but the test's
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while the job was still running", err)
	case err := <-errc:
		t.Fatalf("the job ended (%v) before it was released: Stop cancelled it", err)
	case <-time.After(100 * time.Millisecond): // the job is still running: release it
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("job error = %v, want nil", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop = %v", err)
	}
}

// TestRunCarriesTheScheduleInItsZone: the runner decides whether an activation
// was already served from Next, which must read the spec in the scheduler's
// zone like cron does, and tell scheduled runs from runs by hand.
func TestRunCarriesTheScheduleInItsZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingRunner{}
	s, err := New(Config{Runner: r, Location: berlin, Instance: "here", Jobs: []Job{
		{Name: "nightly", Spec: "0 3 * * *", Run: func(context.Context) (int64, error) { return 0, nil }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop(t.Context()) }()
	if _, err := s.RunNow(t.Context(), "nightly"); err != nil {
		t.Fatal(err)
	}
	if r.last.Scheduled || r.last.Instance != "here" || r.last.Job != "nightly" {
		t.Fatalf("run = %+v", r.last)
	}
	// 01:30 UTC on 29 March 2026 is 03:30 in Berlin (summer time began at 02:00 UTC+1):
	// the next 03:00 there is the following day, 01:00 UTC.
	from := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	if got, want := r.last.Next(from), time.Date(2026, 3, 30, 1, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Next(%v) = %v, want %v", from, got.UTC(), want)
	}
}

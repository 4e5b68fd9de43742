package app_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/store"
)

// Once across replicas (#7, acceptance 2): three `crescendo serve` processes
// on one database fire offer-expiry every second. Every activation runs in
// exactly one of them; one is SIGKILLed while it runs the job (held inside a
// statement by a table lock), and the next activation still runs, in another
// process, which closes the killed run as abandoned.
func TestJobsRunOnceAcrossThreeServeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three processes")
	}
	rig := newCrashRig(t, 0x10B5)
	rig.env = append(rig.env, "JOB_SCHEDULES=offer-expiry=@every 1s")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	byInstance := map[string]*child{}
	for _, name := range []string{"j0", "j1", "j2"} {
		c := rig.start(name)
		byInstance[fmt.Sprintf("%s/%d", host, c.cmd.Process.Pid)] = c
	}
	for _, c := range byInstance {
		if err := c.waitLog("crescendo started", 1, crashJoinTimeout); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	runs := func() []store.JobRun {
		t.Helper()
		all, err := rig.st.JobRuns(ctx, "offer-expiry", 1000)
		if err != nil {
			t.Fatal(err)
		}
		slices.Reverse(all) // oldest first
		return all
	}
	// waitRuns polls the run history until cond holds.
	waitRuns := func(what string, cond func([]store.JobRun) bool) []store.JobRun {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		for ; ; <-poll.C {
			if r := runs(); cond(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: runs %+v", what, runs())
			}
		}
	}
	started := time.Now()
	waitRuns("six runs", func(r []store.JobRun) bool { return len(r) >= 6 })

	// Hold the job inside its statement: expiring offers waits for this lock.
	tx, err := rig.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE offers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	// A run that began before the lock was granted may already be past its
	// statement and end ok; only one begun after it is surely held.
	before := runs()
	lastBefore := before[len(before)-1].ID
	held := waitRuns("a run held by the lock", func(r []store.JobRun) bool {
		last := r[len(r)-1]
		return last.ID > lastBefore && last.Outcome == "running"
	})
	killed := held[len(held)-1]
	victim := byInstance[killed.Instance]
	if victim == nil {
		t.Fatalf("run %+v is from no process of this test", killed)
	}
	if err := victim.kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed %s (%s) during run %d", victim.name, killed.Instance, killed.ID)
	// The killed process's lock went with its connection: the next activation
	// runs elsewhere while the killed statement is still waiting.
	waitRuns("a run after the kill", func(r []store.JobRun) bool {
		last := r[len(r)-1]
		return last.ID > killed.ID && last.Instance != killed.Instance
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	final := waitRuns("an ok run after the kill and the abandoned one closed", func(r []store.JobRun) bool {
		abandoned, ok := false, false
		for _, run := range r {
			abandoned = abandoned || (run.ID == killed.ID && run.Outcome == "abandoned")
			ok = ok || (run.ID > killed.ID && run.Outcome == "ok" && run.Instance != killed.Instance)
		}
		return abandoned && ok
	})
	elapsed := time.Since(started)

	// Each activation (a whole second) ran once: every scheduled run starts at
	// or after the activation following the previous run's start.
	instances := map[string]int{}
	for i, run := range final {
		if !run.Scheduled {
			t.Errorf("run %d was not scheduled", run.ID)
		}
		instances[run.Instance]++
		if run.Instance != killed.Instance && run.Outcome != "ok" {
			t.Errorf("run %+v did not end ok", run)
		}
		if i == 0 {
			continue
		}
		prev := final[i-1]
		if next := prev.StartedAt.Truncate(time.Second).Add(time.Second); run.StartedAt.Before(next) {
			t.Errorf("runs %d (%s, %s) and %d (%s, %s) served one activation",
				prev.ID, prev.Instance, prev.StartedAt.Format(time.StampMilli), run.ID, run.Instance, run.StartedAt.Format(time.StampMilli))
		}
	}
	// Replicas that take turns serve nearly every second; a few are lost
	// while one run waits for the lock and the others find the job busy.
	if len(final) < int(elapsed.Seconds())/2 {
		t.Errorf("%d runs in %s: activations were missed", len(final), elapsed)
	}
	t.Logf("%d runs in %s by %v", len(final), elapsed.Round(time.Second), instances)
}

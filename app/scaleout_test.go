package app_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// partitionsOwned asks each member's /metrics how many partitions it owns.
func partitionsOwned(t *testing.T, members []*child) ([]int, error) {
	t.Helper()
	out := make([]int, len(members))
	for i, c := range members {
		c.mu.Lock()
		addr := c.http
		c.mu.Unlock()
		if addr == "" {
			return nil, fmt.Errorf("%s has not started", c.name)
		}
		v, ok := value(scrape(t, "http://"+addr), "crescendo_consumer_partitions_assigned")
		if !ok {
			return nil, fmt.Errorf("%s exports no crescendo_consumer_partitions_assigned", c.name)
		}
		out[i] = int(v)
	}
	return out, nil
}

// waitLoads waits until members have logged at least n partition loads in
// all, or crashJoinTimeout passes, and returns how many they logged.
func waitLoads(members []*child, n int) int {
	deadline := time.Now().Add(crashJoinTimeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		got := 0
		for _, c := range members {
			got += c.count("partition loaded")
		}
		if got >= n || time.Now().After(deadline) {
			return got
		}
	}
}

// waitShared waits until the members own every partition between them, each some.
func waitShared(t *testing.T, members []*child) []int {
	t.Helper()
	deadline := time.Now().Add(crashJoinTimeout)
	var last []int
	var err error
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for ; time.Now().Before(deadline); <-poll.C {
		for _, c := range members {
			if c.exited() {
				t.Fatalf("%s exited by itself (%v)\n%s", c.name, c.err, c.logTail())
			}
		}
		if last, err = partitionsOwned(t, members); err == nil {
			sum, each := 0, true
			for _, n := range last {
				sum += n
				each = each && n > 0
			}
			if sum == crashPartitions && each {
				return last
			}
		}
	}
	var names []string
	for _, c := range members {
		names = append(names, c.name)
	}
	t.Fatalf("%v never shared the %d partitions: last %v (%v)", names, crashPartitions, last, err)
	return nil
}

// Scale-out (#8, acceptance 1): three `crescendo serve` processes in one
// group share the partitions while events stream; one is stopped and its
// partitions move to the other two; it starts again and takes some back.
// Afterwards every index state, session, contribution, offer and delivery
// job equals one straight run of the same records: nothing lost, nothing
// counted twice, no offer issued twice.
func TestScaleOutThreeServeProcessesMatchOneStraightRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three processes while 20,000 events flow")
	}
	rig := newCrashRig(t, 0x5CA1E001)
	rig.minEvents = 20_000
	producer := rig.produce(1500)
	members := []*child{rig.start("s0"), rig.start("s1"), rig.start("s2")}
	owned := waitShared(t, members)
	rig.checkpointed(members[0])
	t.Logf("three members own %v of %d partitions", owned, crashPartitions)

	stopped := members[1]
	loadsBefore := members[0].count("partition loaded") + members[2].count("partition loaded")
	if err := stopped.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not stop within 40s of SIGTERM\n%s", stopped.name, stopped.logTail())
	}
	if stopped.err != nil || stopped.count("stopped") != 1 {
		t.Fatalf("%s exited with %v after SIGTERM\n%s", stopped.name, stopped.err, stopped.logTail())
	}
	rest := []*child{members[0], members[2]}
	owned = waitShared(t, rest)
	// Owning a partition (a generation started) comes before loading it.
	moved := waitLoads(rest, loadsBefore+1) - loadsBefore
	if moved < 1 {
		t.Errorf("no partition was loaded by the two others after %s stopped", stopped.name)
	}
	rig.checkpointed(members[0])
	t.Logf("after stopping %s: the two others own %v; they loaded %d partitions", stopped.name, owned, moved)

	back := rig.start("s1-again")
	all := []*child{members[0], members[2], back}
	owned = waitShared(t, all)
	rig.checkpointed(back)
	t.Logf("after starting it again: %v", owned)
	if err := back.waitLog("partition loaded", 1, crashJoinTimeout); err != nil {
		t.Errorf("the restarted member loaded no partition: %v", err)
	}
	rig.finish(producer, all...)
}

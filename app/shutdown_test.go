package app_test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/sandbox/sendgrid"
)

// Graceful shutdown (#8, acceptance 7). Two `crescendo serve` processes share
// the partitions while events stream; one of them also has deliveries in
// flight, held open by the email sandbox. SIGTERM to that one must:
//   - stop fetching and make every record it read durable: its last tenure of
//     each partition ends with read_to = checkpointed_to, and the other member
//     loads that partition at exactly that offset (from Postgres);
//   - leave the group: the other member owns every partition long before the
//     stopping member's session (45 s) could have expired;
//   - drain delivery workers: it does not exit while its sends are in flight,
//     and once the provider answers, each of them is recorded as delivered,
//     none left in between; jobs it had not started stay queued and are
//     delivered, once, by the next process;
//   - exit 0.
func TestServeSIGTERMCheckpointsLeavesTheGroupAndDrainsDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three serve processes while events flow")
	}
	const (
		session  = 45 * time.Second
		workers  = 4
		queued   = 12
		ruleID   = "drain"
		handover = 30 * time.Second // well inside the session
	)
	rig := newCrashRig(t, 0x5106E001)
	rig.minEvents = 1
	ctx := t.Context()

	sb, err := demo.StartSandboxes()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	gate := make(chan struct{}) // sends hang until the test closes it
	arrived := make(chan struct{}, queued)
	var posts atomic.Int64
	sb.SendGrid.SetFault(func(r *http.Request) sendgrid.Fault {
		if r.Method != http.MethodPost {
			return sendgrid.Fault{}
		}
		posts.Add(1)
		arrived <- struct{}{}
		return sendgrid.Fault{Hang: gate} // then answers normally
	})
	queueOffers(ctx, t, rig.st, ruleID, queued, "UTC", []offers.Channel{offers.ChannelEmail}, func(i int) (string, string) {
		return "", fmt.Sprintf("drain%03d@example.com", i)
	})

	base := append(slices.Clone(rig.env),
		"KAFKA_SESSION_TIMEOUT="+session.String(), "KAFKA_REBALANCE_TIMEOUT=10s",
		"SHUTDOWN_TIMEOUT=90s", "PROVIDER_TIMEOUT=90s", "DELIVERY_RESCUE_AFTER=10m",
	)
	delivering := append(slices.Clone(base),
		"SENDGRID_API_KEY="+sb.SendGridKey, "SENDGRID_FROM="+emailFrom, "SENDGRID_BASE_URL="+sb.SendGridURL,
		"OFFER_LINK_BASE=https://crescendo.test/o/", "DELIVERY_EMAIL_RATE=0",
		fmt.Sprintf("DELIVERY_WORKERS=%d", workers),
	)
	consumingOnly := append(slices.Clone(base), "DELIVERY_WORKERS=0")

	producer := rig.produce(1500)
	rig.env = delivering
	a := rig.start("a")
	rig.env = consumingOnly
	b := rig.start("b")
	waitShared(t, []*child{a, b})
	// a's last generation must have loaded its partitions before the
	// SIGTERM, or there is no handover to follow.
	if err := a.waitSettled(crashJoinTimeout); err != nil {
		t.Fatal(err)
	}
	rig.checkpointed(a)
	for range workers {
		select {
		case <-arrived:
		case <-time.After(60 * time.Second):
			t.Fatalf("only %d sends reached the sandbox; want %d in flight\n%s", posts.Load(), workers, a.logTail())
		}
	}

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	termAt := time.Now()
	deadline := termAt.Add(handover)
	poll := time.NewTicker(50 * time.Millisecond)
	for ; ; <-poll.C {
		if a.exited() {
			t.Fatalf("a exited (%v) with %d sends still in flight: it did not wait for its delivery workers\n%s", a.err, workers, a.logTail())
		}
		if owned, err := partitionsOwned(t, []*child{b}); err == nil && owned[0] == crashPartitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b did not own all %d partitions within %s of a's SIGTERM (a's session is %s): a did not leave the group\n%s",
				crashPartitions, handover, session, a.logTail())
		}
	}
	poll.Stop()
	t.Logf("b owned every partition %s after a's SIGTERM; a still draining %d sends", time.Since(termAt).Round(time.Millisecond), workers)

	close(gate)
	select {
	case <-a.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("a did not exit within 60s of its sends completing\n%s", a.logTail())
	}
	if a.err != nil || a.count("stopped") != 1 {
		t.Fatalf("a exited with %v after SIGTERM, want 0 and a clean stop\n%s", a.err, a.logTail())
	}

	checkHandover(t, a, b)

	// What a had in flight ended delivered; nothing is left in between.
	var delivered, unresolved, running int
	if err := rig.st.Pool().QueryRow(ctx, `SELECT count(*) FROM offers WHERE rule_id = $1 AND status = 'delivered'`, ruleID).Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	if err := rig.st.Pool().QueryRow(ctx, `SELECT count(*) FROM offers o WHERE o.rule_id = $1 AND (SELECT outcome FROM delivery_attempts d
		WHERE d.offer_id = o.id ORDER BY d.id DESC LIMIT 1) IN ('sending', 'unknown')`, ruleID).Scan(&unresolved); err != nil {
		t.Fatal(err)
	}
	if err := rig.st.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_offer' AND state = 'running'`).Scan(&running); err != nil {
		t.Fatal(err)
	}
	accepted := len(sb.SendGrid.Messages())
	if delivered < workers || delivered != accepted || unresolved != 0 || running != 0 {
		t.Fatalf("after a's shutdown: %d offers delivered, the sandbox accepted %d, %d attempts unresolved, %d jobs running; want at least %d delivered = accepted, 0, 0\n%s",
			delivered, accepted, unresolved, running, workers, a.logTail())
	}
	t.Logf("a drained: %d delivered before exiting, %d left queued", delivered, queued-delivered)

	// The rest is delivered by the next process, and nothing twice.
	rig.env = delivering
	c := rig.start("c")
	eventually(t, 90*time.Second, "every queued offer to be delivered", func() bool {
		var n int
		if err := rig.st.Pool().QueryRow(ctx, `SELECT count(*) FROM offers WHERE rule_id = $1 AND status = 'delivered'`, ruleID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == queued
	})
	seen := map[string]int{}
	for _, m := range sb.SendGrid.Messages() {
		if k := offerIDInMail.FindSubmatch(m.Raw); k != nil {
			seen[string(k[1])]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("offer %s accepted %d times", id, n)
		}
	}
	if len(seen) != queued {
		t.Errorf("the sandbox accepted %d distinct offers, want %d", len(seen), queued)
	}

	close(producer.stop)
	if err := <-producer.done; err != nil {
		t.Fatal(err)
	}
	for _, m := range []*child{b, c} {
		if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*child{b, c} {
		select {
		case <-m.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not stop within 60s of SIGTERM\n%s", m.name, m.logTail())
		}
		if m.err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", m.name, m.err, m.logTail())
		}
	}
}

// checkHandover follows each partition of a's last generation to b: a
// released it with everything it read checkpointed, and b loaded it from
// exactly there.
func checkHandover(t *testing.T, a, b *child) {
	t.Helper()
	a.mu.Lock()
	aRecs := slices.Clone(a.handovers)
	a.mu.Unlock()
	var bRecs []map[string]any

	// a's final generation: the loads after its last "generation started",
	// and the release that ended each.
	_, last := lastGeneration(aRecs)
	loaded, released := map[int]map[string]any{}, map[int]map[string]any{}
	for _, r := range last {
		p := int(num(r, "partition"))
		switch r["msg"] {
		case "partition loaded":
			loaded[p] = r
		case "partition released":
			released[p] = r
		}
	}
	// b's final generation began after a left, so b loaded each of those
	// partitions from what a made durable last. b owns a partition (the
	// caller waited for that) a little before it logs the load: wait for the
	// log lines, on b's log signal.
	bLoads := map[int]int64{}
	timeout := time.After(30 * time.Second)
	for giveUp := false; ; {
		// The records and the signal of the next line, taken together.
		b.mu.Lock()
		bRecs = slices.Clone(b.handovers)
		changed := b.changed
		b.mu.Unlock()
		clear(bLoads)
		for _, r := range bRecs {
			if r["msg"] == "partition loaded" {
				bLoads[int(num(r, "partition"))] = int64(num(r, "offset"))
			}
		}
		missing := false
		for p := range released {
			if _, ok := bLoads[p]; !ok {
				missing = true
			}
		}
		if !missing || giveUp {
			break // all loaded, or report what b logged
		}
		select {
		case <-changed:
		case <-b.done:
			giveUp = true
		case <-timeout:
			giveUp = true
		}
	}
	if len(loaded) == 0 {
		t.Fatalf("a's last generation loaded no partition: %v", aRecs)
	}
	for p, l := range loaded {
		rel, ok := released[p]
		if !ok {
			t.Errorf("a loaded partition %d in its last generation and never released it", p)
			continue
		}
		readTo, cpTo := int64(num(rel, "read_to")), int64(num(rel, "checkpointed_to"))
		if rel["checkpointed"] != true || readTo != cpTo {
			t.Errorf("a released partition %d having read to %d but checkpointed to %d (checkpointed: %v): records read were not made durable", p, readTo, cpTo, rel["checkpointed"])
		}
		if from := int64(num(l, "offset")); cpTo < from {
			t.Errorf("a released partition %d at %d, before where it loaded it (%d)", p, cpTo, from)
		}
		if got, ok := bLoads[p]; !ok || got != cpTo {
			t.Errorf("b loaded partition %d at %d (loaded: %v), want %d where a checkpointed it", p, got, ok, cpTo)
		}
	}
	t.Logf("a handed over %d partitions to b at their checkpoints", len(loaded))
}

var offerIDInMail = regexp.MustCompile(`"offer_id":"([0-9a-f-]{36})"`)

func num(rec map[string]any, key string) float64 {
	v, _ := rec[key].(float64)
	return v
}

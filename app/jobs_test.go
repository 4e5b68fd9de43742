package app_test

import (
	"context"
	"hash/fnv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/store"
)

// Operators see and run periodic jobs (#7): only with the operator token; a
// run by hand takes the same lock as the schedule, so while another replica
// holds the job it is refused, and each run is in the history.
func TestOperatorsListAndRunJobsOnceAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	e.settings.OperatorToken = "op-test-secret"
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, nil) })
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	if status, _ := call(t, "GET", base+"/v1/jobs/runs", "not-the-token", nil); status != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", status)
	}
	if status, _ := call(t, "GET", base+"/v1/jobs", partnerKey, nil); status != http.StatusUnauthorized {
		t.Fatalf("a partner key: %d, want 401", status)
	}
	status, body := call(t, "GET", base+"/v1/jobs", "op-test-secret", nil)
	var names []string
	for _, n := range body["jobs"].([]any) {
		names = append(names, n.(string))
	}
	if status != http.StatusOK || !slices.Contains(names, "offer-expiry") || !slices.IsSorted(names) {
		t.Fatalf("jobs: %d %v", status, body)
	}
	if status, _ := call(t, "POST", base+"/v1/jobs/no-such-job/run", "op-test-secret", nil); status != http.StatusNotFound {
		t.Fatalf("an unknown job: %d, want 404", status)
	}

	// Another replica is running offer-expiry: it holds the job's lock.
	tx, err := a.Store.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	h := fnv.New64a()
	h.Write([]byte("job:offer-expiry"))
	if _, err := tx.Exec(t.Context(), "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		t.Fatal(err)
	}
	status, body = call(t, "POST", base+"/v1/jobs/offer-expiry/run", "op-test-secret", nil)
	if status != http.StatusConflict || body["code"] != "job_running_elsewhere" {
		t.Fatalf("while another replica runs it: %d %v, want 409 job_running_elsewhere", status, body)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}

	status, body = call(t, "POST", base+"/v1/jobs/offer-expiry/run", "op-test-secret", nil)
	if status != http.StatusOK || body["job"] != "offer-expiry" || body["outcome"] != "ok" || body["finished_at"] == nil {
		t.Fatalf("run by hand: %d %v", status, body)
	}
	id := body["id"]
	status, body = call(t, "GET", base+"/v1/jobs/runs?job=offer-expiry&limit=5", "op-test-secret", nil)
	runs, _ := body["runs"].([]any)
	if status != http.StatusOK || len(runs) == 0 || runs[0].(map[string]any)["id"] != id {
		t.Fatalf("history: %d %v, want the run %v first", status, body, id)
	}
	for _, r := range runs {
		if r.(map[string]any)["job"] != "offer-expiry" {
			t.Fatalf("filtered history holds %v", r)
		}
	}
	if status, _ := call(t, "GET", base+"/v1/jobs/runs?limit=0", "op-test-secret", nil); status != http.StatusBadRequest {
		t.Fatalf("limit=0: %d, want 400", status)
	}

	// The same through `crescendo jobs`.
	bin := filepath.Join(t.TempDir(), "crescendo")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/crescendo").CombinedOutput(); err != nil {
		t.Fatalf("building the binary: %v\n%s", err, out)
	}
	crescendo := func(token string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CRESCENDO_URL="+base, "OPERATOR_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := crescendo("op-test-secret", "jobs", "run", "offer-expiry")
	if err != nil || !strings.Contains(out, "offer-expiry") || !strings.Contains(out, " ok ") {
		t.Fatalf("jobs run: %v\n%s", err, out)
	}
	out, err = crescendo("op-test-secret", "jobs", "list", "--job", "offer-expiry", "--limit", "2")
	if err != nil || strings.Count(out, "offer-expiry") != 2 || !strings.HasPrefix(out, "ID ") || strings.Count(out, "hand@") != 2 {
		t.Fatalf("jobs list: %v\n%s", err, out)
	}
	if out, err := crescendo("wrong", "jobs", "list"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("jobs list with a wrong token: %v\n%s", err, out)
	}
}

// The index-recompute job (#7, F5) reaches every partition: each owner folds
// decay into its pairs, snapshots them and answers in that checkpoint, and
// the run ends once all have, counting the pairs.
func TestIndexRecomputeJobReachesEveryPartition(t *testing.T) {
	e := newEnv(t)
	fans := []fan{{id: uuid.New(), user: "r1"}, {id: uuid.New(), user: "r2"}, {id: uuid.New(), user: "r3"}}
	a := e.start(func(ctx context.Context, st *store.Store) error { return seedCatalog(ctx, st, fans) })
	defer a.Shutdown(context.Background())
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []kafka.Message
	for _, f := range fans {
		msgs = append(msgs, listen(f.user, f.user+"-1", now, "aurora", 2))
	}
	e.publish(msgs...)
	ctx := t.Context()
	count := func(sql string) (n int) {
		t.Helper()
		if err := a.Store.Pool().QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 30*time.Second, "the three listens checkpointed", func() bool {
		return count(`SELECT count(*) FROM contributions`) == 3
	})
	id, err := a.Scheduler.RunNow(ctx, "index-recompute")
	if err != nil {
		t.Fatal(err)
	}
	run, err := a.Store.JobRunByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Outcome != "ok" || run.Rows != 3 {
		t.Fatalf("run %+v, want ok with the 3 pairs", run)
	}
	partitions := count(`SELECT count(*) FROM consumer_offsets`)
	if acks := count(`SELECT count(*) FROM index_recompute_acks`); partitions == 0 || acks != partitions {
		t.Fatalf("%d of %d partitions answered", acks, partitions)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/internal/pgtemp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build compiles the real binary once per test.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crescendo")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building: %v", err)
	}
	return bin
}

func baseEnv(t *testing.T) []string {
	return append(os.Environ(),
		"DATABASE_URL="+pgtemp.New(t),
		"CRESCENDO_DATA_DIR="+t.TempDir(),
		"CRESCENDO_KAFKA_ADDR=127.0.0.1:0",
		"HTTP_ADDR=127.0.0.1:0",
		"KAFKA_BROKERS=",
		"KAFKA_PARTITIONS=2",
		"OFFER_SIGNING_KEYS=k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	)
}

func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(baseEnv(t), "LOG_FORMAT=json", "LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan map[string]any, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			lines <- rec
		}
	}()
	waitFor := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case rec, ok := <-lines:
				if !ok {
					t.Fatalf("process exited before logging %q", msg)
				}
				if rec["msg"] == msg {
					return rec
				}
			case <-timeout:
				_ = cmd.Process.Kill()
				t.Fatalf("no %q log line", msg)
			}
		}
	}
	started := waitFor("crescendo started")
	addr, _ := started["http"].(string)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	waitFor("generation started")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("stopped")
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want 0", err)
	}
}

func TestDemoStopsOnSIGTERMWithASummary(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "demo", "--fans", "20", "--rate", "100")
	cmd.Env = baseEnv(t)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	var out strings.Builder
	signalled := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !signalled && strings.Contains(sc.Text(), "events published") {
			signalled = true
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exited with %v after SIGTERM, want 0; output:\n%s", err, out.String())
	}
	if !signalled || !strings.Contains(out.String(), "summary after") {
		t.Fatalf("no progress or no summary; output:\n%s", out.String())
	}
}

func TestBotsEvalWritesMatrix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.csv")
	var out bytes.Buffer
	err := run(context.Background(), []string{"bots-eval", "--humans", "2000", "--agents", "50", "--naive-bots", "50",
		"--careful-bots", "50", "--rings", "3", "--resellers", "20", "--matrix", path}, func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "truth \\ predicted,human,suspect,automated\n") || strings.Count(string(b), "\n") != 4 {
		t.Fatalf("matrix file:\n%s", b)
	}
	if !strings.Contains(out.String(), "automated ") {
		t.Fatalf("report without the automated class:\n%s", out.String())
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/replay"
	"github.com/crescendo-hq/crescendo/store"
)

// fixedDryRun answers every dry run with the same report.
type fixedDryRun struct{}

func (fixedDryRun) DryRun(_ context.Context, ruleID string, since time.Duration) (replay.Report, error) {
	until := time.Date(2031, 3, 8, 12, 0, 0, 0, time.UTC)
	return replay.Report{
		RuleID: ruleID, Version: 2, From: until.Add(-since), Until: until, Events: 5400, Offers: 7,
		ByTier: map[int]int{1: 5, 2: 2}, ByChannel: map[string]int{"push": 4, "sms": 3},
		NoOffer: map[int]map[string]int{1: {"holdout": 2, "too_far_from_venue": 9}},
		Sample: []replay.SampleOffer{{FanID: uuid.MustParse("00000000-0000-4000-8000-000000000001"), Tier: 2, Index: 31.25,
			EventID: "streamly/ev-9", At: until.Add(-2 * time.Hour), Channel: "sms"}},
		Missed: []replay.SampleDecision{{FanID: uuid.MustParse("00000000-0000-4000-8000-000000000002"), Tier: 1, Index: 12,
			Reason: "too_far_from_venue", Detail: "412 km"}},
		Notes: []string{"replayed from the topic's first retained offset"},
	}, nil
}

const rulesYAML = `rules:
  - id: faithful
    name: Presale for the faithful
    performer_id: aurora-lane
    show_id: roundhouse
    tiers:
      - threshold: 20
        perks: [presale]
      - threshold: 45
        perks: [presale, "section:Floor A"]
        inventory: 200
    upper_threshold: 400
    condition: session.minutes >= 10 && fan.friend_count != 0
    channels: [push, sms, email]
    lifetime: 48h
    per_fan_cap: 1
    budget: 5000
    quiet_hours: {start: "22:00", end: "08:00", mode: hold}
    max_distance_km: 150
    holdout: 0.05
  - id: late-night
    performer_id: aurora-lane
    show_id: roundhouse
    tiers: [{threshold: 60, perks: [vip_upgrade]}]
    channels: [push]
    lifetime: 2h
`

func TestRulesCommandsDriveTheHTTPAPI(t *testing.T) {
	bin := build(t)
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: pgtemp.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateOrganization(ctx, "acme", "Acme Records"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		st.PutPerformer(ctx, "aurora-lane", "Aurora Lane"),
		st.AssignPerformer(ctx, "acme", "aurora-lane"),
		st.PutShow(ctx, store.Show{ID: "roundhouse", PerformerID: "aurora-lane", Name: "Aurora Lane at the Roundhouse",
			StartsAt: time.Now().AddDate(0, 2, 0), VenueName: "Roundhouse", VenueLat: 51.543, VenueLon: -0.152}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, token, err := st.CreateToken(ctx, "acme", store.RoleMarketer, "cli")
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Partners: st, Marketers: st, Rules: st, DryRun: fixedDryRun{}, Push: push.NewHub(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	crescendo := func(env []string, args ...string) (stdout, stderr string, exit int) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			exit = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return out.String(), errOut.String(), exit
	}
	env := []string{"CRESCENDO_URL=" + srv.URL, "CRESCENDO_TOKEN=" + token}
	ok := func(args ...string) string {
		t.Helper()
		stdout, stderr, exit := crescendo(env, args...)
		if exit != 0 {
			t.Fatalf("crescendo %s: exit %d\n%s", strings.Join(args, " "), exit, stderr)
		}
		return stdout
	}

	rules := write("rules.yaml", rulesYAML)
	if out := ok("rules", "apply", "-f", rules); out != "rule faithful: version 1 (created)\nrule late-night: version 1 (created)\n" {
		t.Fatalf("first apply printed %q", out)
	}
	if out := ok("rules", "apply", "-f", rules); out != "rule faithful: version 1 (unchanged)\nrule late-night: version 1 (unchanged)\n" {
		t.Fatalf("second apply printed %q", out)
	}
	one := write("one.yaml", `id: late-night
performer_id: aurora-lane
show_id: roundhouse
tiers: [{threshold: 60, perks: [vip_upgrade]}]
channels: [push]
lifetime: 3h
`)
	if out := ok("rules", "apply", "-f", one); out != "rule late-night: version 2 (changed)\n" {
		t.Fatalf("applying a one-rule file printed %q", out)
	}

	list := ok("rules", "list")
	for _, want := range []string{`ID\s+VERSION\s+STATE`, `faithful\s+1\s+active\s+aurora-lane\s+roundhouse\s+20, 45\s+Presale for the faithful`,
		`late-night\s+2\s+active`} {
		if !regexp.MustCompile(want).MatchString(list) {
			t.Fatalf("list does not match %q:\n%s", want, list)
		}
	}
	// What get prints, applied again, changes nothing.
	got := ok("rules", "get", "faithful")
	if !strings.HasPrefix(got, "# rule faithful: version 1, active, changed ") || !strings.Contains(got, "\nid: faithful\nname: Presale for the faithful\n") ||
		!strings.Contains(got, "section:Floor A") || strings.Contains(got, "version: ") {
		t.Fatalf("get printed:\n%s", got)
	}
	if out := ok("rules", "apply", "-f", write("got.yaml", got)); out != "rule faithful: version 1 (unchanged)\n" {
		t.Fatalf("applying what get printed: %q", out)
	}
	if out := ok("rules", "get", "late-night", "--json"); !strings.Contains(out, `"version":2`) || !strings.Contains(out, `"lifetime":"3h0m0s"`) {
		t.Fatalf("get --json printed %s", out)
	}
	if out := ok("rules", "deactivate", "late-night"); out != "rule late-night: inactive (version 2)\n" {
		t.Fatalf("deactivate printed %q", out)
	}
	if out := ok("rules", "activate", "late-night"); out != "rule late-night: active (version 2)\n" {
		t.Fatalf("activate printed %q", out)
	}

	report := ok("rules", "dry-run", "faithful", "--since", "48h")
	for _, want := range []string{
		"dry run of rule faithful, version 2, over 2031-03-06 12:00 UTC to 2031-03-08 12:00 UTC: 5400 events\n",
		"offers it would have issued: 7\n", "by tier:     tier 1: 5, tier 2: 2\n", "by channel:  push: 4, sms: 3\n",
		"tier 1: too_far_from_venue 9, holdout 2\n", "00000000-0000-4000-8000-000000000001", "event streamly/ev-9",
		"too_far_from_venue (412 km)", "note: replayed from",
	} {
		if !strings.Contains(report, want) {
			t.Fatalf("dry-run report lacks %q:\n%s", want, report)
		}
	}

	// A file with a bad rule applies the good ones, lists every problem of the
	// bad one with the CEL error's position, and exits 1.
	bad := write("bad.yaml", `rules:
  - id: broken
    performer_id: aurora-lane
    show_id: roundhouse
    tiers: [{threshold: 0, perks: [limo]}]
    condition: "session.minutes > 10 && fann.friend_count > 2"
    channels: [pigeon]
    lifetime: 2 days
    quiet_hours: {start: "22:00", end: "08:00", mode: later}
  - id: fine
    performer_id: aurora-lane
    show_id: roundhouse
    tiers: [{threshold: 5, perks: [presale]}]
    channels: [email]
    lifetime: 1h
`)
	stdout, stderr, exit := crescendo(env, "rules", "apply", "-f", bad)
	if exit != 1 || stdout != "rule fine: version 1 (created)\n" {
		t.Fatalf("apply of a bad file: exit %d, stdout %q, stderr %s", exit, stdout, stderr)
	}
	for _, want := range []string{"rule broken: refused: 422", "  lifetime: want a duration", "  tiers[0].threshold: must be positive",
		"  tiers[0].perks[0]: unknown perk", "  channels[0]: unknown channel", "  quiet_hours.mode: want hold or skip",
		"  condition: 1:25: undeclared reference to 'fann'", "1 of 2 rules refused"} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("apply's errors lack %q:\n%s", want, stderr)
		}
	}

	// The README's example applies as it is.
	readme := mustRead(t, filepath.Join("..", "..", "README.md"))
	_, example, found := strings.Cut(readme, "```yaml\nrules:")
	example, _, _ = strings.Cut(example, "```")
	if !found {
		t.Fatal("the README has no rules example")
	}
	if out := ok("rules", "apply", "-f", write("readme.yaml", "rules:"+example)); out != "rule faithful: version 2 (changed)\n" {
		t.Fatalf("applying the README's example printed %q", out)
	}

	if _, stderr, exit := crescendo(env, "rules", "get", "nope"); exit != 1 || !strings.Contains(stderr, "404 Not Found: no such rule in this organization") {
		t.Fatalf("get of an unknown rule: exit %d, %s", exit, stderr)
	}
	if _, stderr, exit := crescendo([]string{"CRESCENDO_URL=" + srv.URL, "CRESCENDO_TOKEN="}, "rules", "list"); exit != 1 || !strings.Contains(stderr, "CRESCENDO_TOKEN is not set") {
		t.Fatalf("list without a token: exit %d, %s", exit, stderr)
	}
	if _, stderr, exit := crescendo(env, "rules", "get"); exit != 1 || !strings.Contains(stderr, "want 1 rule id") {
		t.Fatalf("get without an id: exit %d, %s", exit, stderr)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package bots_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/crescendo-hq/crescendo/bots"
)

// TestEvaluationMeetsTargets runs the evaluation on the default population
// and holds it to the targets: recall on automated accounts at
// least 0.95, humans classified automated at most 0.5%, and no declared
// agent's fan classified automated for its agent's speed.
func TestEvaluationMeetsTargets(t *testing.T) {
	r := bots.Evaluate(bots.Generate(bots.DefaultPopulation()), bots.DefaultThresholds(), 1)
	var text, matrix bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteMatrix(&matrix); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\n%s", text.String(), matrix.String())
	if err := os.WriteFile(filepath.Join(t.TempDir(), "confusion.csv"), matrix.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	auto := r.Classes[2]
	if auto.Class != bots.Automated {
		t.Fatalf("third class is %s", auto.Class)
	}
	if auto.Recall < 0.95 {
		t.Errorf("recall on automated = %.4f, want ≥ 0.95", auto.Recall)
	}
	if r.HumansAsAutomated > 0.005 {
		t.Errorf("humans classified automated = %.4f%%, want ≤ 0.5%%", 100*r.HumansAsAutomated)
	}
	if r.AgentsAsAutomated != 0 {
		t.Errorf("%d declared agents' fans classified automated, want 0", r.AgentsAsAutomated)
	}
}

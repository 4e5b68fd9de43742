package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/metrics"
)

// exprs returns every "expr" string anywhere in a decoded JSON document.
func exprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "expr" {
				out = append(out, s)
				continue
			}
			out = append(out, exprs(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, exprs(e)...)
		}
	}
	return out
}

var metricRe = regexp.MustCompile(`\bcrescendo_[a-z0-9_]+`)

// The dashboard uses exactly the metrics the code exports: every name in an
// expression exists (a histogram through its _bucket, _sum or _count series,
// a counter only inside rate or increase), and every metric is on it.
func TestDashboardUsesExactlyTheExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/crescendo.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	catalog := metrics.Catalog()
	used := map[string]bool{}
	all := exprs(doc)
	if len(all) < 10 {
		t.Fatalf("only %d expressions found", len(all))
	}
	for _, e := range all {
		for _, loc := range metricRe.FindAllStringIndex(e, -1) {
			name := e[loc[0]:loc[1]]
			base, typ := name, catalog[name]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && catalog[b] == "histogram" {
					base, typ = b, "histogram"
				}
			}
			switch {
			case typ == "":
				t.Errorf("%q uses %s, which the code does not export", e, name)
			case typ == "histogram" && base == name:
				t.Errorf("%q uses histogram %s without _bucket, _sum or _count", e, name)
			case typ == "counter" && !regexp.MustCompile(`(rate|increase)\(`+name+`[{\[]`).MatchString(e):
				t.Errorf("%q uses counter %s outside rate() or increase()", e, name)
			}
			used[base] = true
		}
	}
	var missing []string
	for name := range catalog {
		if !used[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("exported but on no panel: %v", missing)
	}
}

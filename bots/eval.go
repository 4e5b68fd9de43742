package bots

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// ClassScore is one class's figures in an evaluation.
type ClassScore struct {
	Class     Class   `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	// FalsePositiveRate is the share of accounts of other classes given this one.
	FalsePositiveRate float64 `json:"false_positive_rate"`
	Support           int     `json:"support"`
}

// Report is the outcome of an evaluation.
type Report struct {
	Accounts int `json:"accounts"`
	// Matrix[truth][predicted] counts accounts, classes in Classes() order.
	Matrix  [3][3]int    `json:"matrix"`
	Classes []ClassScore `json:"classes"`
	// HumansAsAutomated is the share of true humans classified as automated.
	HumansAsAutomated float64 `json:"humans_as_automated"`
	// AgentsAsAutomated is how many declared agents' fans were classified as automated.
	AgentsAsAutomated int `json:"agents_as_automated"`
	// ByKind[kind][predicted] counts accounts per generated kind.
	ByKind map[Kind][3]int `json:"by_kind"`
}

func classIndex(c Class) int {
	switch c {
	case Suspect:
		return 1
	case Automated:
		return 2
	}
	return 0
}

// EvidenceFor runs an account's history through the same observation code
// the pipeline uses and joins the batch signals, so the evaluation measures
// the product, not a model of it. Purchases the state refuses are skipped,
// as the pipeline dead-letters them.
func EvidenceFor(a Account, rings map[string]RingEvidence, t Thresholds, now time.Time) Evidence {
	var st State
	for _, p := range a.Purchases {
		_ = st.ObservePurchase(p.ID, p.At, p.Lat, p.Lon, now, t)
	}
	for i := 0; i < a.TooGood; i++ {
		st.ObserveTooGood()
	}
	e := Evidence{FriendCount: a.FriendCount, FriendsKnown: true, Live: st.Summary(),
		Reactions: SummarizeReactions(a.Reactions, t.WithDefaults()), Watched: a.Watched, DeclaredAgent: a.Agent}
	if r, ok := rings[a.ID]; ok {
		e.Ring = &r
	}
	return e
}

// Evaluate classifies every account of pop under t and scores the result
// against each account's true class.
func Evaluate(pop Population, t Thresholds, seed uint64) Report {
	t = t.WithDefaults()
	rings := DetectRings(pop.Ties, t, seed)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Report{Accounts: len(pop.Accounts), ByKind: map[Kind][3]int{}}
	for _, a := range pop.Accounts {
		c := Classify(EvidenceFor(a, rings, t, now), t)
		truth, got := classIndex(a.Kind.Truth()), classIndex(c.Class)
		r.Matrix[truth][got]++
		k := r.ByKind[a.Kind]
		k[got]++
		r.ByKind[a.Kind] = k
		if a.Agent && c.Class == Automated {
			r.AgentsAsAutomated++
		}
	}
	for i, c := range Classes() {
		var tp, col, row, others, fp int
		for j := range 3 {
			col += r.Matrix[j][i]
			row += r.Matrix[i][j]
			if j != i {
				fp += r.Matrix[j][i]
				for k := range 3 {
					others += r.Matrix[j][k]
				}
			}
		}
		tp = r.Matrix[i][i]
		r.Classes = append(r.Classes, ClassScore{Class: c, Precision: ratio(tp, col), Recall: ratio(tp, row),
			FalsePositiveRate: ratio(fp, others), Support: row})
	}
	var humans int
	for j := range 3 {
		humans += r.Matrix[0][j]
	}
	r.HumansAsAutomated = ratio(r.Matrix[0][2], humans)
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// WriteMatrix writes the confusion matrix as CSV: one row per true class,
// one column per predicted class.
func (r Report) WriteMatrix(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"truth \\ predicted"}
	for _, c := range Classes() {
		head = append(head, string(c))
	}
	_ = cw.Write(head)
	for i, c := range Classes() {
		row := []string{string(c)}
		for j := range 3 {
			row = append(row, strconv.Itoa(r.Matrix[i][j]))
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing confusion matrix: %w", err)
	}
	return nil
}

// WriteText writes the report for people: per-class figures and per-kind counts.
func (r Report) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "accounts %d\n%-10s %9s %9s %9s %8s\n", r.Accounts, "class", "precision", "recall", "fpr", "support")
	for _, c := range r.Classes {
		if err == nil {
			_, err = fmt.Fprintf(w, "%-10s %9.4f %9.4f %9.4f %8d\n", c.Class, c.Precision, c.Recall, c.FalsePositiveRate, c.Support)
		}
	}
	if err == nil {
		_, err = fmt.Fprintf(w, "humans classified automated: %.4f%%\ndeclared agents' fans classified automated: %d\nby kind (human/suspect/automated):\n",
			100*r.HumansAsAutomated, r.AgentsAsAutomated)
	}
	for _, k := range []Kind{KindHuman, KindAgent, KindNaiveBot, KindCarefulBot, KindRing, KindReseller} {
		if v, ok := r.ByKind[k]; ok && err == nil {
			_, err = fmt.Fprintf(w, "  %-12s %6d %6d %6d\n", k, v[0], v[1], v[2])
		}
	}
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

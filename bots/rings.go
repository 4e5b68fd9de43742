package bots

import (
	"math/rand/v2"

	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/community"
	"gonum.org/v1/gonum/graph/simple"
)

// Tie is an undirected tie between two accounts: friendship or
// interactions, weighted by how much they talk (1 for a bare friendship).
type Tie struct {
	A, B   string
	Weight float64
}

// DetectRings finds rings: communities (Louvain modularity, gonum) of at
// least RingMinSize accounts that keep to themselves — at least
// RingInsideShare of their members' tie weight stays inside — and are dense,
// each member tied to at least RingDensity of the others. Real friend
// circles are communities too, but they are sparse and reach out of
// themselves. seed makes the result reproducible.
func DetectRings(ties []Tie, t Thresholds, seed uint64) map[string]RingEvidence {
	t = t.WithDefaults()
	ids := map[string]int64{}
	var names []string
	node := func(s string) int64 {
		if id, ok := ids[s]; ok {
			return id
		}
		id := int64(len(names))
		ids[s] = id
		names = append(names, s)
		return id
	}
	g := simple.NewWeightedUndirectedGraph(0, 0)
	for _, tie := range ties {
		if tie.A == tie.B || tie.A == "" || tie.B == "" {
			continue
		}
		a, b := node(tie.A), node(tie.B)
		for _, id := range []int64{a, b} {
			if g.Node(id) == nil {
				g.AddNode(simple.Node(id))
			}
		}
		w := max(tie.Weight, 1)
		if e := g.WeightedEdge(a, b); e != nil {
			w += e.Weight()
		}
		g.SetWeightedEdge(simple.WeightedEdge{F: simple.Node(a), T: simple.Node(b), W: w})
	}
	out := map[string]RingEvidence{}
	if g.Nodes().Len() == 0 {
		return out
	}
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	var examine func(sub graph.Undirected, depth int)
	examine = func(sub graph.Undirected, depth int) {
		for _, comm := range community.Modularize(sub, 1, src).Communities() {
			if len(comm) < t.RingMinSize {
				continue
			}
			ev := ringStats(g, comm)
			if ev.InsideShare >= t.RingInsideShare && ev.Density >= t.RingDensity {
				for _, n := range comm {
					out[names[n.ID()]] = ev
				}
				continue
			}
			// Modularity cannot see communities much smaller than the graph
			// (its resolution limit): a ring of a dozen merges into the
			// friend circle it keeps a few ties to. Splitting the community
			// on its own finds it again.
			if depth < maxRingDepth && len(comm) < sub.Nodes().Len() {
				examine(induced(g, comm), depth+1)
			}
		}
	}
	examine(g, 0)
	return out
}

// maxRingDepth bounds how often a community is split again.
const maxRingDepth = 4

// ringStats measures a community in the whole graph g.
func ringStats(g *simple.WeightedUndirectedGraph, comm []graph.Node) RingEvidence {
	in := make(map[int64]bool, len(comm))
	for _, n := range comm {
		in[n.ID()] = true
	}
	var inside, total float64
	var insideEdges int
	for _, n := range comm {
		for _, m := range graph.NodesOf(g.From(n.ID())) {
			w := g.WeightedEdge(n.ID(), m.ID()).Weight()
			total += w
			if in[m.ID()] {
				inside += w
				insideEdges++
			}
		}
	}
	size := len(comm)
	// Each inside edge was counted from both of its ends.
	return RingEvidence{Size: size, InsideShare: inside / total, Density: float64(insideEdges) / float64(size*(size-1))}
}

// induced is the subgraph of g on the nodes of comm.
func induced(g *simple.WeightedUndirectedGraph, comm []graph.Node) *simple.WeightedUndirectedGraph {
	sub := simple.NewWeightedUndirectedGraph(0, 0)
	in := make(map[int64]bool, len(comm))
	for _, n := range comm {
		in[n.ID()] = true
		sub.AddNode(n)
	}
	for _, n := range comm {
		for _, m := range graph.NodesOf(g.From(n.ID())) {
			if in[m.ID()] && n.ID() < m.ID() {
				sub.SetWeightedEdge(g.WeightedEdge(n.ID(), m.ID()))
			}
		}
	}
	return sub
}

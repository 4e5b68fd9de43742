package scoring

import (
	"slices"
	"strings"
	"sync"
)

// comparisonReach is how many words before an affinity word a comparison
// word may stand: "sounds like" and "sounds just like" are comparisons, and
// two words is where the cases seen in posts stop.
const comparisonReach = 2

// Match is what the affinity parser found about one performer in one text.
type Match struct {
	// Mentioned reports that the text names the performer (a name or alias).
	Mentioned bool
	// Affinity reports an affinity statement about the performer that no
	// negation undoes: it is what scores the affinity point.
	Affinity bool
	// Negated reports that the only affinity statements about the performer
	// were negated ("don't love"). Such a post scores nothing, not even as a
	// post about the show: it says the fan is not one.
	Negated bool
	// Word is the normalized affinity phrase that counted or was negated,
	// such as "love" or "obsessed with"; Name is the normalized name it was
	// near. Both are empty when there was no statement.
	Word, Name string
}

type phraseKind uint8

const (
	kindName phraseKind = iota
	kindAffinity
	kindNegation
	kindComparison
	kindClause
)

// phrase is one compiled vocabulary entry or name: a sequence of normalized
// words.
type phrase struct {
	words []string
	text  string // words joined by spaces
	kind  phraseKind
	perfs []int32 // kindName: the performers this name belongs to
}

// phraseSet finds phrases in token sequences. It is a trie of words, so a
// match costs one lookup per word it reads however many phrases share their
// first words: a list per first word cost a post that says "the" a look at
// every name that starts with it, as many band names do. The longest phrase
// starting at a word wins ("no longer" over "no").
type phraseSet struct {
	root phraseNode
}

type phraseNode struct {
	phrase *phrase // the phrase that ends here, if any
	next   map[string]*phraseNode
}

// add puts p in the set; a phrase with the same words as one already there
// is merged into it (names shared by performers) or, for vocabulary, ignored.
func (ps *phraseSet) add(p *phrase) *phrase {
	if len(p.words) == 0 {
		return nil
	}
	n := &ps.root
	for _, w := range p.words {
		c := n.next[w]
		if c == nil {
			if n.next == nil {
				n.next = map[string]*phraseNode{}
			}
			c = &phraseNode{}
			n.next[w] = c
		}
		n = c
	}
	q := n.phrase
	if q == nil {
		n.phrase = p
		return p
	}
	if q.kind == kindName && p.kind == kindName {
		for _, id := range p.perfs {
			if !slices.Contains(q.perfs, id) {
				q.perfs = append(q.perfs, id)
			}
		}
	}
	return q
}

// match returns the longest phrase that starts at token i, or nil. Tokens
// marked in blocked cannot be part of it.
func (ps *phraseSet) match(s *scratch, i int, blocked []bool) *phrase {
	var longest *phrase
	n := &ps.root
	for j := i; j < len(s.toks) && (blocked == nil || !blocked[j]); j++ {
		if n = n.next[string(s.word(j))]; n == nil {
			break
		}
		if n.phrase != nil {
			longest = n.phrase
		}
	}
	return longest
}

// lexicon is a profile's compiled vocabulary.
type lexicon struct {
	set       phraseSet
	window    int // AffinityWindowWords
	negWindow int // NegationWindowWords
	symbols   []rune
}

func compileLexicon(p Profile) *lexicon {
	lx := &lexicon{set: phraseSet{}, window: p.AffinityWindowWords, negWindow: p.NegationWindowWords}
	lists := []struct {
		words []string
		kind  phraseKind
	}{
		// Affinity first: a phrase in two lists keeps its first kind, and
		// Validate reports the clash.
		{p.AffinityWords, kindAffinity},
		{p.NegationWords, kindNegation},
		{p.ComparisonWords, kindComparison},
		{p.ClauseWords, kindClause},
	}
	for _, l := range lists {
		for _, w := range l.words {
			words, syms := normalizePhrase(w)
			lx.set.add(&phrase{words: words, text: strings.Join(words, " "), kind: l.kind})
			lx.symbols = append(lx.symbols, syms...)
		}
	}
	return lx
}

// catalogNames compiles the names and aliases of performers into one set,
// so that one pass over a post finds every performer it mentions.
func catalogNames(perfs []Performer) (phraseSet, []rune) {
	set := phraseSet{}
	var symbols []rune
	for i, p := range perfs {
		for _, n := range p.Names {
			words, syms := normalizePhrase(n)
			set.add(&phrase{words: words, text: strings.Join(words, " "), kind: kindName, perfs: []int32{int32(i)}})
			symbols = append(symbols, syms...)
		}
	}
	return set, symbols
}

type nameHit struct {
	start, end int
	ph         *phrase
}

type lexHit struct {
	start, end int
	ph         *phrase
}

// textAnalyzer holds what analysing a text needs beyond one profile's
// lexicon: every performer's names and the symbols worth keeping.
type textAnalyzer struct {
	names phraseSet
	keep  map[rune]struct{}
	pool  sync.Pool
}

func newTextAnalyzer(names phraseSet, symbols []rune) *textAnalyzer {
	a := &textAnalyzer{names: names, keep: make(map[rune]struct{}, len(symbols))}
	for _, r := range symbols {
		a.keep[r] = struct{}{}
	}
	a.pool.New = func() any { return new(scratch) }
	return a
}

// findNames tokenizes text and records every name occurrence, longest first
// and without overlaps, marking name words so that a band called "No Doubt"
// is not read as a negation.
func (a *textAnalyzer) findNames(s *scratch, text string) {
	s.reset()
	tokenize(s, text, a.keep)
	s.isName = slices.Grow(s.isName, len(s.toks))[:len(s.toks)]
	clear(s.isName)
	for i := 0; i < len(s.toks); {
		p := a.names.match(s, i, nil)
		if p == nil {
			i++
			continue
		}
		end := i + len(p.words)
		s.names = append(s.names, nameHit{start: i, end: end, ph: p})
		for j := i; j < end; j++ {
			s.isName[j] = true
		}
		i = end
	}
}

// mentioned appends the indexes of the performers s's names belong to, each
// once, in order of first mention.
func mentionedIn(s *scratch, dst []int32) []int32 {
	for _, h := range s.names {
		for _, id := range h.ph.perfs {
			if !slices.Contains(dst, id) {
				dst = append(dst, id)
			}
		}
	}
	return dst
}

// analyze reads text for statements about performer perf under lexicon lx.
//
// An affinity phrase is a statement about the name nearest to it within the
// window, of any performer, the following name winning a tie ("love X" is
// the common order). Nearest rather than any, so that in "I don't like Y but
// I love X" the "love" is about X, not Y. A statement is negated when a
// negation phrase ends within NegationWindowWords words before it in the same
// clause, and is no statement at all when a comparison word stands right
// before it ("sounds like X").
func (a *textAnalyzer) analyze(text string, lx *lexicon, perf int32) Match {
	s := a.pool.Get().(*scratch)
	defer a.pool.Put(s)
	a.findNames(s, text)

	var m Match
	for _, h := range s.names {
		if slices.Contains(h.ph.perfs, perf) {
			m.Mentioned = true
			break
		}
	}
	if !m.Mentioned {
		return m
	}

	// The vocabulary pass. Clause words ("but") end a clause as punctuation
	// does, so every later token's clause number moves up by one.
	var shift int32
	for i := 0; i < len(s.toks); {
		s.toks[i].clause += shift
		if s.isName[i] {
			i++
			continue
		}
		p := lx.set.match(s, i, s.isName)
		if p == nil {
			i++
			continue
		}
		end := i + len(p.words)
		for j := i + 1; j < end; j++ {
			s.toks[j].clause += shift
		}
		h := lexHit{start: i, end: end, ph: p}
		switch p.kind {
		case kindAffinity:
			s.aff = append(s.aff, h)
		case kindNegation:
			s.neg = append(s.neg, h)
		case kindComparison:
			s.cmp = append(s.cmp, h)
		case kindClause:
			shift++
		}
		i = end
	}

	for _, af := range s.aff {
		name := nearestName(s, af, lx.window)
		if name == nil || !slices.Contains(name.ph.perfs, perf) {
			continue
		}
		if precededBy(s, s.cmp, af.start, comparisonReach) {
			continue
		}
		if precededBy(s, s.neg, af.start, lx.negWindow) {
			if !m.Negated {
				m.Negated, m.Word, m.Name = true, af.ph.text, name.ph.text
			}
			continue
		}
		return Match{Mentioned: true, Affinity: true, Word: af.ph.text, Name: name.ph.text}
	}
	return m
}

// nearestName returns the name occurrence closest to af within window words,
// or nil. Distance counts positions: in "love X" X is 1 word away.
func nearestName(s *scratch, af lexHit, window int) *nameHit {
	var best *nameHit
	bestD := window + 1
	for i := range s.names {
		h := &s.names[i]
		var d int
		after := h.start >= af.end
		switch {
		case after:
			d = h.start - (af.end - 1)
		case h.end <= af.start:
			d = af.start - (h.end - 1)
		default:
			continue
		}
		if d > window {
			continue
		}
		if d < bestD || d == bestD && after {
			best, bestD = h, d
		}
	}
	return best
}

// precededBy reports whether one of hits ends at most reach words before
// token at, within at's clause.
func precededBy(s *scratch, hits []lexHit, at, reach int) bool {
	for _, h := range hits {
		last := h.end - 1
		if last < at && at-last <= reach && s.toks[last].clause == s.toks[at].clause {
			return true
		}
	}
	return false
}

// FindAffinity reads text for affinity statements about the performer with
// the given names, under profile p's vocabulary and windows. It compiles
// both on every call, so it suits tests and tools; the event path uses
// Scorer.Analyze, which compiles once and also weighs other performers'
// names when deciding whom a statement is about.
func FindAffinity(text string, names []string, p Profile) Match {
	lx := compileLexicon(p)
	set, syms := catalogNames([]Performer{{Names: names}})
	a := newTextAnalyzer(set, append(syms, lx.symbols...))
	return a.analyze(text, lx, 0)
}

// MentionedPerformers returns the ids of the performers whose name or an
// alias occurs in text, each once, in order of first mention. It compiles
// the names on every call; Scorer.Mentioned is the precompiled form.
func MentionedPerformers(text string, performers []Performer) []string {
	set, syms := catalogNames(performers)
	a := newTextAnalyzer(set, syms)
	s := new(scratch)
	a.findNames(s, text)
	var ids []string
	for _, i := range mentionedIn(s, nil) {
		ids = append(ids, performers[i].ID)
	}
	return ids
}

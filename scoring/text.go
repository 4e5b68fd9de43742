package scoring

import (
	"unicode"
	"unicode/utf8"
)

//go:generate go run gen_fold.go

// foldRune maps r to the one rune every case variant of it maps to.
//
// Lower-of-upper rather than plain lower case because some letters lower to a
// rune that their capital does not: ς and σ both upper to Σ, ı and i both to I,
// ſ and s both to S. With lower-of-upper a post reads the same shouted or not,
// which FuzzAffinity and TestFoldIsCaseInvariant check over every rune.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(unicode.ToUpper(r))
}

// asciiSpelling returns the plain spelling of a folded accented Latin letter
// ("é" → "e", "ß" → "ss"), or "" to keep the letter. Precomposed letters
// need this table; decomposed ones (e + U+0301) lose their mark in the
// tokenizer instead, so both spellings of "Beyoncé" meet "Beyonce".
func asciiSpelling(r rune) string {
	switch {
	case r >= 0x00C0 && r <= 0x024F:
		return asciiFold0[r-0x00C0]
	case r >= 0x1E00 && r <= 0x1EFF:
		return asciiFold1[r-0x1E00]
	}
	return ""
}

// isApostrophe reports runes that join a word rather than split it, so that
// "don't", "don’t" and "dont" are all the one token "dont". Partners' apps and
// phone keyboards use any of these.
func isApostrophe(r rune) bool {
	switch r {
	case '\'', '’', '‘', 'ʼ', '′', '`', '´':
		return true
	}
	return false
}

// possessiveS reports whether rest, the text after an apostrophe, starts
// with an "s" (of any case) that ends the word, and its length.
func possessiveS(rest string) (n int, ok bool) {
	r, n := utf8.DecodeRuneInString(rest)
	if n == 0 || foldRune(r) != 's' {
		return 0, false
	}
	next, m := utf8.DecodeRuneInString(rest[n:])
	if m == 0 {
		return n, true
	}
	f := foldRune(next)
	if isApostrophe(next) || !(unicode.IsLetter(f) || unicode.IsNumber(f) || unicode.IsMark(f)) {
		return n, true
	}
	return 0, false
}

// isClauseBreak reports punctuation that ends a clause. Negation does not
// reach across it: in "No, I love them" the "no" answers something else.
func isClauseBreak(r rune) bool {
	switch r {
	case '.', ',', '!', '?', ';', ':', '\n', '…', '‼', '⁇', '⁈', '⁉', '¡', '¿',
		'—', '–', '。', '、', '！', '？', '，', '；', '：':
		return true
	}
	return false
}

// token is one word of a normalized text: a span of scratch.buf.
type token struct {
	start, end int32
	// clause numbers the clauses of the text; two tokens with different
	// numbers have a clause break between them.
	clause int32
}

// scratch is the reusable memory of one text analysis, taken from a pool so
// that a Scorer is safe for concurrent use and analysing a post does not
// allocate per word.
type scratch struct {
	buf    []byte
	toks   []token
	isName []bool
	names  []nameHit
	aff    []lexHit
	neg    []lexHit
	cmp    []lexHit
}

func (s *scratch) reset() {
	s.buf = s.buf[:0]
	s.toks = s.toks[:0]
	s.isName = s.isName[:0]
	s.names = s.names[:0]
	s.aff = s.aff[:0]
	s.neg = s.neg[:0]
	s.cmp = s.cmp[:0]
}

// word returns token i as a string that aliases the buffer. It is only used
// as a map key, where Go does not copy it.
func (s *scratch) word(i int) []byte {
	t := s.toks[i]
	return s.buf[t.start:t.end]
}

// tokenize splits text into normalized words: case-folded, accents removed,
// apostrophes dropped, letters and digits kept. Runes in keep (symbols such as
// ❤ that some vocabulary uses) become one-rune words; every other rune
// separates words, and clause punctuation also starts a new clause.
//
// Invalid UTF-8 decodes to U+FFFD, a separator, so any byte string is safe.
func tokenize(s *scratch, text string, keep map[rune]struct{}) {
	var clause int32
	open := false // a word is being built
	end := func() {
		if open {
			s.toks[len(s.toks)-1].end = int32(len(s.buf))
			open = false
		}
	}
	begin := func() {
		s.toks = append(s.toks, token{start: int32(len(s.buf)), clause: clause})
		open = true
	}
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		i += n
		if isApostrophe(r) {
			// A possessive names its owner: "Aurora Lane's" must still
			// be "aurora lane", so "'s" at a word's end goes too.
			if n, ok := possessiveS(text[i:]); ok && open {
				i += n
			}
			continue
		}
		f := foldRune(r)
		switch {
		case f < utf8.RuneSelf && (f >= 'a' && f <= 'z' || f >= '0' && f <= '9'):
			if !open {
				begin()
			}
			s.buf = append(s.buf, byte(f))
		case f >= utf8.RuneSelf && (unicode.IsLetter(f) || unicode.IsNumber(f)):
			if !open {
				begin()
			}
			if sp := asciiSpelling(f); sp != "" {
				s.buf = append(s.buf, sp...)
			} else {
				s.buf = utf8.AppendRune(s.buf, f)
			}
		case f >= utf8.RuneSelf && unicode.IsMark(f):
			// Combining accents and emoji variation selectors belong to the
			// rune before them; dropping them is what folds "é" spelled
			// as e + U+0301 to "e".
		default:
			end()
			if _, ok := keep[f]; ok {
				begin()
				s.buf = utf8.AppendRune(s.buf, f)
				end()
			} else if isClauseBreak(f) {
				clause++
			}
		}
	}
	end()
}

// isKeepableSymbol reports runes that may be words of a vocabulary although
// they are not letters: emoji and other pictographs, such as ❤ for "love".
func isKeepableSymbol(r rune) bool {
	return unicode.Is(unicode.So, r)
}

// normalizePhrase returns the words of a vocabulary entry or name, normalized
// as tokenize normalizes texts, and the symbols among them.
func normalizePhrase(phrase string) (words []string, symbols []rune) {
	var s scratch
	keepAll := map[rune]struct{}{}
	for _, r := range phrase {
		if f := foldRune(r); isKeepableSymbol(f) {
			keepAll[f] = struct{}{}
		}
	}
	tokenize(&s, phrase, keepAll)
	for i := range s.toks {
		w := string(s.word(i))
		words = append(words, w)
		if r, n := utf8.DecodeRuneInString(w); n == len(w) {
			if _, ok := keepAll[r]; ok {
				symbols = append(symbols, r)
			}
		}
	}
	return words, symbols
}

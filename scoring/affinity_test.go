package scoring

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

var auroraNames = []string{"Aurora Lane", "@AuroraLane", "#AuroraLaneLive"}

func TestFindAffinity(t *testing.T) {
	def := DefaultProfile()
	narrow := DefaultProfile()
	narrow.AffinityWindowWords = 2
	narrow.NegationWindowWords = 1
	adoreOnly := DefaultProfile()
	adoreOnly.AffinityWords = []string{"adore", "big fan"}

	type want struct {
		mentioned, affinity, negated bool
		word                         string
	}
	yes := func(word string) want { return want{mentioned: true, affinity: true, word: word} }
	neg := func(word string) want { return want{mentioned: true, negated: true, word: word} }
	none := want{mentioned: true}

	cases := []struct {
		name  string
		text  string
		names []string
		p     Profile
		want  want
	}{
		{"plain", "I love Aurora Lane", nil, def, yes("love")},
		{"case", "i LOVE aURORA lANE", nil, def, yes("love")},
		{"name first", "AURORA LANE!!! I love them.", nil, def, yes("love")},
		{"punctuation between", "love... Aurora-Lane?!", nil, def, yes("love")},
		{"possessive name", "I love Aurora Lane's new album", nil, def, yes("love")},
		{"curly possessive", "I love Aurora Lane’s new album", nil, def, yes("love")},
		{"like", "I like Aurora Lane", nil, def, yes("like")},
		{"adore", "I adore Aurora Lane", nil, def, yes("adore")},
		{"phrase", "I'm obsessed with Aurora Lane", nil, def, yes("obsessed with")},
		{"emoji heart as affinity", "I ❤️ Aurora Lane", nil, def, yes("❤")},
		{"emoji between words ignored", "I love 🔥🔥 Aurora Lane 🔥", nil, def, yes("love")},
		{"alias handle", "@AuroraLane I love you", nil, def, yes("love")},
		{"alias hashtag", "so in love #AuroraLaneLive", nil, def, yes("love")},
		{"accent in name, plain text", "I love Beyonce", []string{"Beyoncé"}, def, yes("love")},
		{"accent in text, plain name", "I LOVE BEYONCÉ", []string{"Beyonce"}, def, yes("love")},
		{"decomposed accent", "I love Beyonce\u0301", []string{"Beyoncé"}, def, yes("love")},
		{"not mentioned", "I love pizza", nil, def, want{}},
		{"part of name is not the name", "I love the aurora tonight", nil, def, want{}},
		{"mention without affinity", "Aurora Lane tickets on sale", nil, def, none},
		{"empty", "", nil, def, want{}},

		{"window: 5 words after", "I love one two three four Aurora Lane", nil, def, yes("love")},
		{"window: 6 words after", "I love one two three four five Aurora Lane", nil, def, none},
		{"window: 5 words before", "Aurora Lane one two three four love", nil, def, yes("love")},
		{"window: 6 words before", "Aurora Lane one two three four five love", nil, def, none},
		{"window: profile setting 2", "I love the new Aurora Lane", nil, narrow, none},
		{"window: profile setting 2 fits", "I love new Aurora Lane", nil, narrow, yes("love")},

		{"negation dont", "I dont love Aurora Lane", nil, def, neg("love")},
		{"negation don't", "I don't love Aurora Lane", nil, def, neg("love")},
		{"negation curly don’t", "I don’t love Aurora Lane", nil, def, neg("love")},
		{"negation modifier letter apostrophe", "I donʼt love Aurora Lane", nil, def, neg("love")},
		{"negation never liked", "I never liked Aurora Lane", nil, def, neg("liked")},
		{"negation do not like", "I do not like Aurora Lane", nil, def, neg("like")},
		{"negation not a fan", "I'm not a fan of Aurora Lane", nil, def, neg("fan")},
		{"negation no longer", "I no longer love Aurora Lane", nil, def, neg("love")},
		{"negation used to", "I used to love Aurora Lane", nil, def, neg("love")},
		{"negation can't", "I CAN'T like Aurora Lane anymore", nil, def, neg("like")},
		{"negation 3 words before", "I don't really truly love Aurora Lane", nil, def, neg("love")},
		{"negation 4 words before is too far", "I don't really truly deeply love Aurora Lane", nil, def, yes("love")},
		{"negation far away", "Never thought the day would come when I love Aurora Lane", nil, def, yes("love")},
		{"negation across comma", "No, I love Aurora Lane", nil, def, yes("love")},
		{"negation across but", "I dont care but love Aurora Lane", nil, def, yes("love")},
		{"negation window setting 1", "I don't really love Aurora Lane", nil, narrow, yes("love")},
		{"negated then affirmed", "I don't like the venue. I love Aurora Lane", nil, def, yes("love")},

		{"like as preposition: looks like", "This looks like Aurora Lane", nil, def, none},
		{"like as preposition: sounds just like", "It sounds just like Aurora Lane", nil, def, none},
		{"like as preposition: feel like", "I feel like Aurora Lane is overrated", nil, def, none},
		{"would like counts", "I would like to see Aurora Lane", nil, def, yes("like")},

		{"custom words: love does not count", "I love Aurora Lane", nil, adoreOnly, none},
		{"custom words: phrase", "big fan of Aurora Lane", nil, adoreOnly, yes("big fan")},
		{"band named like a negation", "I love No Doubt", []string{"No Doubt"}, def, yes("love")},
		{"band named like an affinity word", "Love is a band: I like Love", []string{"Love"}, def, yes("like")},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			names := c.names
			if names == nil {
				names = auroraNames
			}
			m := FindAffinity(c.text, names, c.p)
			got := want{mentioned: m.Mentioned, affinity: m.Affinity, negated: m.Negated, word: m.Word}
			if got != c.want {
				t.Errorf("FindAffinity(%q) = %+v, want %+v", c.text, m, c.want)
			}
		})
	}
}

// Statements belong to the nearest performer name, so one performer's
// negation or affection does not leak to another named nearby.
func TestAnalyzeAttributesToNearestName(t *testing.T) {
	s, err := NewScorer(Config{Performers: []Performer{
		{ID: "x", Names: []string{"Xavi Rose"}},
		{ID: "y", Names: []string{"Yara Moon"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	text := "I don't like Yara Moon but I love Xavi Rose"
	if m := s.Analyze(text, "x"); !m.Affinity {
		t.Errorf("x: %+v, want affinity", m)
	}
	if m := s.Analyze(text, "y"); m.Affinity || !m.Negated {
		t.Errorf("y: %+v, want negated only", m)
	}
	// "X sounds like Y": a comparison, affinity for neither.
	text = "Xavi Rose sounds like Yara Moon"
	for _, id := range []string{"x", "y"} {
		if m := s.Analyze(text, id); m.Affinity {
			t.Errorf("%s: %+v, want no affinity in a comparison", id, m)
		}
	}
	if got := s.Mentioned("yara moon & XAVI ROSE & Yara Moon"); !slices.Equal(got, []string{"y", "x"}) {
		t.Errorf("Mentioned = %v, want [y x]", got)
	}
	if m := s.Analyze("I love Xavi Rose", "nobody"); m != (Match{}) {
		t.Errorf("unknown performer: %+v", m)
	}
}

func TestMentionedPerformers(t *testing.T) {
	perfs := []Performer{
		{ID: "a", Names: []string{"Aurora Lane", "#AuroraLaneLive"}},
		{ID: "b", Names: []string{"Beyoncé", "Queen B"}},
		{ID: "c", Names: []string{"Lane"}}, // a shorter name inside a longer one
	}
	cases := []struct {
		text string
		want []string
	}{
		{"BEYONCE and aurora lane", []string{"b", "a"}},
		{"#AuroraLaneLive tonight", []string{"a"}},
		{"queen b!", []string{"b"}},
		{"Aurora Lane", []string{"a"}}, // the longest name wins; "Lane" inside it is not c
		{"Lane", []string{"c"}},
		{"nothing here", nil},
	}
	for _, c := range cases {
		if got := MentionedPerformers(c.text, perfs); !slices.Equal(got, c.want) {
			t.Errorf("MentionedPerformers(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

func TestTokenize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Don’t STOP", "dont stop"},
		{"Beyoncé ÆTHER straße", "beyonce aether strasse"},
		{"Aurora-Lane's  tour", "aurora lane tour"},
		{"ΣΊΣΥΦΟΣ σίσυφος", "σίσυφοσ σίσυφοσ"}, // case folds everywhere; accents only in Latin
		{"x\xffy", "x y"},
		{"1999 ½", "1999 ½"},
	}
	for _, c := range cases {
		var s scratch
		tokenize(&s, c.in, nil)
		var words []string
		for i := range s.toks {
			words = append(words, string(s.word(i)))
		}
		if got := strings.Join(words, " "); got != c.want {
			t.Errorf("tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Every rune must fold to the same rune as its upper and lower case, or a
// post would read differently shouted; this checks all of Unicode.
func TestFoldIsCaseInvariant(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		f := foldRune(r)
		if u := foldRune(unicode.ToUpper(r)); u != f {
			t.Fatalf("fold(%U)=%U but fold(upper)=%U", r, f, u)
		}
		if l := foldRune(unicode.ToLower(r)); l != f {
			t.Fatalf("fold(%U)=%U but fold(lower)=%U", r, f, l)
		}
	}
}

// The longest name starting at a word wins among many that share their first
// words, a blocked word ends what can match, and a name given for two
// performers is one phrase for both.
func TestPhraseSetLongestMatch(t *testing.T) {
	var set phraseSet
	add := func(name string, perf int32) {
		var s scratch
		tokenize(&s, name, nil)
		words := make([]string, len(s.toks))
		for i := range s.toks {
			words[i] = string(s.word(i))
		}
		set.add(&phrase{words: words, text: strings.Join(words, " "), kind: kindName, perfs: []int32{perf}})
	}
	for i := range 500 {
		add("The Band "+strings.Repeat("x", i+1), int32(100+i))
	}
	add("The Lane", 1)
	add("The Lane Sisters", 2)
	add("the lane", 3) // the same name for another performer
	cases := []struct {
		text    string
		start   int
		blocked []int
		want    string
		perfs   []int32
	}{
		{text: "the lane sisters live", want: "the lane sisters", perfs: []int32{2}},
		{text: "THE LANE tonight", want: "the lane", perfs: []int32{1, 3}},
		{text: "the lane", want: "the lane", perfs: []int32{1, 3}},
		{text: "the band xxx rocks", want: "the band xxx", perfs: []int32{102}},
		{text: "the band", want: ""},
		{text: "see the lane sisters", start: 1, want: "the lane sisters", perfs: []int32{2}},
		{text: "the lane sisters", blocked: []int{2}, want: "the lane", perfs: []int32{1, 3}},
		{text: "the lane sisters", blocked: []int{0}, want: ""},
		{text: "lane sisters", want: ""},
	}
	for _, c := range cases {
		var s scratch
		tokenize(&s, c.text, nil)
		var blocked []bool
		if c.blocked != nil {
			blocked = make([]bool, len(s.toks))
			for _, b := range c.blocked {
				blocked[b] = true
			}
		}
		got := set.match(&s, c.start, blocked)
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%q at %d: matched %q, want nothing", c.text, c.start, got.text)
		case c.want != "" && (got == nil || got.text != c.want || !slices.Equal(got.perfs, c.perfs)):
			t.Errorf("%q at %d: matched %v, want %q for %v", c.text, c.start, got, c.want, c.perfs)
		}
	}
}

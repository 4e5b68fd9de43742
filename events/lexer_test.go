package events

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// lexerSeeds are JSON documents, valid and not, for FuzzLexer and
// TestLexerAgreesWithEncodingJSON.
var lexerSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-1E-2`, `true`, `false`, `null`,
	`{"a":[1,{"b":null}],"c":"d"}`, ` { "a" : "b" } `,
	`"\u00e9\ud83c\udfb5\ud800\udc00\ud800x\udc00"`, `"\"\\\/\b\f\n\r\t"`,
	`9223372036854775807`, `-9223372036854775808`, `9223372036854775808`, `1e400`, `123456789012345678901234567890`,
	`01`, `1.`, `.5`, `-`, `1e`, `+1`, `0x10`, `NaN`, `[1,]`, `{"a":1,}`, `{"a"}`, `{,}`, `[,1]`, `{"a":1 "b":2}`,
	`"abc`, `"\x"`, `"\u12"`, "\"\t\"", "\"\xff\"", `tru`, `nulll`, `[` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 71),
}

// checkLexer compares the lexer with encoding/json on one input, where they
// must agree: syntax, string contents and numbers.
func checkLexer(t *testing.T, in []byte) {
	l := lexer{b: in}
	rej := l.skip(0)
	if rej == nil {
		rej = l.end()
	}
	ours := rej == nil
	std := json.Valid(in)
	switch {
	case ours && !std:
		t.Fatalf("lexer accepts %q, encoding/json does not", in)
	case !ours && std:
		// We are stricter in two documented ways only.
		if !strings.Contains(rej.Detail, "invalid UTF-8") && !strings.Contains(rej.Detail, "nested deeper") {
			t.Fatalf("lexer rejects %q (%v), encoding/json accepts it", in, rej)
		}
	}
	if rej != nil && rej.Reason != ReasonMalformed {
		t.Fatalf("syntax error has reason %s", rej.Reason)
	}
	if !ours {
		return
	}

	switch l := (lexer{b: in}); l.peek() {
	case '"':
		got, rej := l.string()
		if rej != nil {
			t.Fatalf("string(%q): %v", in, rej)
		}
		var want string
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("string(%q) = %q, encoding/json says %q", in, got, want)
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		gotF, _, rej := l.readFloat("", "n")
		var wantF float64
		if err := json.Unmarshal(in, &wantF); (err == nil) != (rej == nil) {
			t.Fatalf("readFloat(%q) = %v, encoding/json says %v", in, rej, err)
		} else if err == nil && gotF != wantF && !(math.IsNaN(gotF) && math.IsNaN(wantF)) {
			t.Fatalf("readFloat(%q) = %v, encoding/json says %v", in, gotF, wantF)
		}
		l = lexer{b: in}
		gotI, _, rej := l.readInt("", "n")
		var wantI int64
		if err := json.Unmarshal(in, &wantI); (err == nil) != (rej == nil) {
			t.Fatalf("readInt(%q) = %v, encoding/json says %v", in, rej, err)
		} else if err == nil && gotI != wantI {
			t.Fatalf("readInt(%q) = %v, encoding/json says %v", in, gotI, wantI)
		}
		if rej != nil && rej.Reason != ReasonInvalidField {
			t.Fatalf("readInt(%q) reason %s, want %s", in, rej.Reason, ReasonInvalidField)
		}
	}
}

func TestLexerAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range lexerSeeds {
		t.Run("", func(t *testing.T) { checkLexer(t, []byte(s)) })
	}
}

func TestLexerStrictness(t *testing.T) {
	for _, in := range []string{"\"\xff\"", `[` + strings.Repeat(`[`, maxDepth+1) + strings.Repeat(`]`, maxDepth+2)} {
		l := lexer{b: []byte(in)}
		if rej := l.skip(0); rej == nil || rej.Reason != ReasonMalformed {
			t.Errorf("skip(%.20q) = %v, want malformed", in, rej)
		}
		if !json.Valid([]byte(in)) {
			t.Errorf("encoding/json rejects %.20q; the test no longer shows we are stricter", in)
		}
	}
	// An unescaped string is returned without a copy.
	in := []byte(`"plain ascii and é"`)
	l := lexer{b: in}
	s, rej := l.string()
	if rej != nil || &s[0] != &in[1] {
		t.Errorf("plain string was copied (or failed: %v)", rej)
	}
}

// FuzzLexer checks the hand-written lexer against encoding/json.
func FuzzLexer(f *testing.F) {
	for _, s := range lexerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !utf8.Valid(in) {
			// encoding/json checks no UTF-8; only our side would fail.
			l := lexer{b: in}
			if rej := l.skip(0); rej == nil && l.end() == nil && !json.Valid(in) {
				t.Fatalf("lexer accepts %q, encoding/json does not", in)
			}
			return
		}
		checkLexer(t, in)
	})
}

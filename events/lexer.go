package events

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting in values the decoder skips (extensions, unknown
// data fields), so hostile input cannot exhaust the stack.
const maxDepth = 64

// lexer reads JSON (RFC 8259) from a byte slice without reflection.
//
// It is stricter than encoding/json in two ways: strings must be valid UTF-8
// rather than having bad bytes replaced, and callers reject repeated member
// names they care about. Errors are *Rejection: syntax errors are
// ReasonMalformed, values of the wrong JSON kind ReasonInvalidField.
// plain marks the bytes a JSON string may hold as they are: printable
// ASCII other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special flags, in the high bit of each byte, the bytes of x (eight string
// bytes, little-endian) that are not plain: control characters, the quote,
// the backslash and everything from 0x80. A borrow can flag bytes above a
// flagged one spuriously, never below, so the lowest flag is exact.
func special(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(ones*'"'), x^(ones*'\\')
	return ((x - ones*0x20) | (q-ones)&^q | (bs-ones)&^bs | x) & highs
}

type lexer struct {
	b []byte
	i int
}

func (l *lexer) skipSpace() {
	// Compact JSON has no white space between tokens: one well-predicted
	// comparison answers for it (anything above ' ' is not white space).
	if l.i < len(l.b) && l.b[l.i] > ' ' {
		return
	}
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end. A NUL
// byte in the input also reads as 0, which is no valid start of anything;
// use atEnd to tell the two apart.
func (l *lexer) peek() byte {
	l.skipSpace()
	if l.i < len(l.b) {
		return l.b[l.i]
	}
	return 0
}

func (l *lexer) syntaxError(what string) *Rejection {
	if l.i >= len(l.b) {
		return reject(ReasonMalformed, "parsing JSON: unexpected end of input, want %s", what)
	}
	return reject(ReasonMalformed, "parsing JSON at byte %d: unexpected %q, want %s", l.i, l.b[l.i], what)
}

// atEnd skips white space and reports whether the input is exhausted.
func (l *lexer) atEnd() bool {
	l.skipSpace()
	return l.i >= len(l.b)
}

// end checks that only white space remains.
func (l *lexer) end() *Rejection {
	if !l.atEnd() {
		return l.syntaxError("end of input")
	}
	return nil
}

// kind names the JSON kind of the next value, for error details.
func (l *lexer) kind() string {
	switch l.peek() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	}
	return "invalid JSON"
}

// wrongKind reports that the value at path is not of the wanted kind.
func (l *lexer) wrongKind(path, name, want string) *Rejection {
	if l.kind() == "invalid JSON" {
		return l.syntaxError("a value")
	}
	return reject(ReasonInvalidField, "%s: want %s, got %s", join(path, name), want, l.kind())
}

// join builds a field path; it runs only on error paths, so it may allocate.
func join(path, name string) string {
	switch {
	case path == "":
		return name
	case name == "":
		return path
	}
	return path + "." + name
}

// null consumes a null literal if one is next.
func (l *lexer) null() (bool, *Rejection) {
	if l.peek() != 'n' {
		return false, nil
	}
	return true, l.literal("null")
}

func (l *lexer) literal(lit string) *Rejection {
	if len(l.b)-l.i < len(lit) || string(l.b[l.i:l.i+len(lit)]) != lit {
		return l.syntaxError(lit)
	}
	l.i += len(lit)
	return nil
}

// member advances to the next member of the object being read, which has
// read n members so far, and returns its name. It returns ok == false, having
// consumed the closing brace, when there are no more. The returned name may
// alias the input.
func (l *lexer) member(n int) (name []byte, ok bool, rej *Rejection) {
	switch l.peek() {
	case '}':
		l.i++
		return nil, false, nil
	case ',':
		if n == 0 {
			return nil, false, l.syntaxError("a member name")
		}
		l.i++
		if l.peek() != '"' {
			return nil, false, l.syntaxError("a member name")
		}
	case '"':
		if n > 0 {
			return nil, false, l.syntaxError("',' or '}'")
		}
	default:
		if n > 0 {
			return nil, false, l.syntaxError("',' or '}'")
		}
		return nil, false, l.syntaxError("a member name or '}'")
	}
	name, rej = l.string()
	if rej != nil {
		return nil, false, rej
	}
	if l.peek() != ':' {
		return nil, false, l.syntaxError("':'")
	}
	l.i++
	return name, true, nil
}

// element advances to the next element of the array being read, which has
// read n elements so far. It returns false, having consumed the closing
// bracket, when there are no more.
func (l *lexer) element(n int) (bool, *Rejection) {
	c := l.peek()
	if c == ']' {
		l.i++
		return false, nil
	}
	if n > 0 {
		if c != ',' {
			return false, l.syntaxError("',' or ']'")
		}
		l.i++
	}
	return true, nil
}

// string reads a string, which must be next. The result aliases the input
// when the string has no escapes, which is the common case and costs no
// allocation; callers copy what they keep.
func (l *lexer) string() ([]byte, *Rejection) {
	if l.peek() != '"' {
		return nil, l.syntaxError("a string")
	}
	l.i++
	start := l.i
	for l.i < len(l.b) {
		// Most strings are plain ASCII: skip it eight bytes at a time, then
		// a byte at a time up to whatever needs a closer look.
		b, i := l.b, l.i
		for i+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		l.i = i
		if i == len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s := l.b[start:l.i]
			l.i++
			return s, nil
		case c == '\\':
			return l.unescape(start)
		case c < 0x20:
			return nil, l.syntaxError("an escaped control character")
		case c < utf8.RuneSelf:
			l.i++
		default:
			r, size := utf8.DecodeRune(l.b[l.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, reject(ReasonMalformed, "parsing JSON at byte %d: invalid UTF-8 in string", l.i)
			}
			l.i += size
		}
	}
	return nil, l.syntaxError("'\"'")
}

// unescape continues reading a string that started at start and has an
// escape at l.i, building an unescaped copy.
func (l *lexer) unescape(start int) ([]byte, *Rejection) {
	out := make([]byte, l.i-start, l.i-start+16)
	copy(out, l.b[start:l.i])
	for l.i < len(l.b) {
		c := l.b[l.i]
		switch {
		case c == '"':
			l.i++
			return out, nil
		case c == '\\':
			l.i++
			if l.i >= len(l.b) {
				return nil, l.syntaxError("an escape sequence")
			}
			switch e := l.b[l.i]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := l.hex4(l.i + 1)
				if !ok {
					return nil, l.syntaxError("four hex digits after \\u")
				}
				l.i += 4
				if utf16.IsSurrogate(r) {
					// A lone surrogate becomes U+FFFD, as in encoding/json.
					r2, ok := rune(0), false
					if l.i+6 < len(l.b) && l.b[l.i+1] == '\\' && l.b[l.i+2] == 'u' {
						r2, ok = l.hex4(l.i + 3)
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						l.i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, l.syntaxError("a valid escape sequence")
			}
			l.i++
		case c < 0x20:
			return nil, l.syntaxError("an escaped control character")
		case c < utf8.RuneSelf:
			out = append(out, c)
			l.i++
		default:
			r, size := utf8.DecodeRune(l.b[l.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, reject(ReasonMalformed, "parsing JSON at byte %d: invalid UTF-8 in string", l.i)
			}
			out = append(out, l.b[l.i:l.i+size]...)
			l.i += size
		}
	}
	return nil, l.syntaxError("'\"'")
}

// hex4 decodes the four hex digits at b[i:i+4].
func (l *lexer) hex4(i int) (rune, bool) {
	if i+4 > len(l.b) {
		return 0, false
	}
	var r rune
	for _, c := range l.b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number, which must be next, and reports whether it is
// written as an integer (no fraction or exponent).
func (l *lexer) number() (raw []byte, integer bool, rej *Rejection) {
	l.skipSpace()
	start := l.i
	if l.i < len(l.b) && l.b[l.i] == '-' {
		l.i++
	}
	switch {
	case l.i < len(l.b) && l.b[l.i] == '0':
		l.i++
	case l.i < len(l.b) && '1' <= l.b[l.i] && l.b[l.i] <= '9':
		l.digits()
	default:
		return nil, false, l.syntaxError("a digit")
	}
	integer = true
	if l.i < len(l.b) && l.b[l.i] == '.' {
		integer = false
		l.i++
		if l.digits() == 0 {
			return nil, false, l.syntaxError("a digit")
		}
	}
	if l.i < len(l.b) && (l.b[l.i] == 'e' || l.b[l.i] == 'E') {
		integer = false
		l.i++
		if l.i < len(l.b) && (l.b[l.i] == '+' || l.b[l.i] == '-') {
			l.i++
		}
		if l.digits() == 0 {
			return nil, false, l.syntaxError("a digit")
		}
	}
	return l.b[start:l.i], integer, nil
}

func (l *lexer) digits() int {
	start := l.i
	for l.i < len(l.b) && '0' <= l.b[l.i] && l.b[l.i] <= '9' {
		l.i++
	}
	return l.i - start
}

// skip reads and discards one value of any kind, checking its syntax.
func (l *lexer) skip(depth int) *Rejection {
	if depth > maxDepth {
		return reject(ReasonMalformed, "parsing JSON at byte %d: nested deeper than %d", l.i, maxDepth)
	}
	switch l.peek() {
	case '{':
		l.i++
		for n := 0; ; n++ {
			_, ok, rej := l.member(n)
			if rej != nil {
				return rej
			}
			if !ok {
				return nil
			}
			if rej := l.skip(depth + 1); rej != nil {
				return rej
			}
		}
	case '[':
		l.i++
		for n := 0; ; n++ {
			ok, rej := l.element(n)
			if rej != nil {
				return rej
			}
			if !ok {
				return nil
			}
			if rej := l.skip(depth + 1); rej != nil {
				return rej
			}
		}
	case '"':
		_, rej := l.string()
		return rej
	case 't':
		return l.literal("true")
	case 'f':
		return l.literal("false")
	case 'n':
		return l.literal("null")
	default:
		_, _, rej := l.number()
		return rej
	}
}

// Typed readers. Each reads the value of member name in the object at
// path; null reads as absent (present == false), like a missing member.

// readString reads a string value and copies it.
func (l *lexer) readString(path, name string) (s string, present bool, rej *Rejection) {
	b, present, rej := l.readBytes(path, name)
	return string(b), present, rej
}

// readBytes reads a string value without copying it.
func (l *lexer) readBytes(path, name string) (b []byte, present bool, rej *Rejection) {
	if isNull, rej := l.null(); isNull || rej != nil {
		return nil, false, rej
	}
	if l.peek() != '"' {
		return nil, false, l.wrongKind(path, name, "a string")
	}
	b, rej = l.string()
	return b, rej == nil, rej
}

// readInt reads an integer that fits in an int64.
func (l *lexer) readInt(path, name string) (v int64, present bool, rej *Rejection) {
	if isNull, rej := l.null(); isNull || rej != nil {
		return 0, false, rej
	}
	if c := l.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, false, l.wrongKind(path, name, "an integer")
	}
	raw, integer, rej := l.number()
	if rej != nil {
		return 0, false, rej
	}
	if !integer {
		return 0, false, reject(ReasonInvalidField, "%s: want an integer, got number %.32s", join(path, name), raw)
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, false, reject(ReasonInvalidField, "%s: number %.32s does not fit in 64 bits", join(path, name), raw)
	}
	return v, true, nil
}

// readFloat reads a number as a float64.
func (l *lexer) readFloat(path, name string) (v float64, present bool, rej *Rejection) {
	if isNull, rej := l.null(); isNull || rej != nil {
		return 0, false, rej
	}
	if c := l.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, false, l.wrongKind(path, name, "a number")
	}
	raw, _, rej := l.number()
	if rej != nil {
		return 0, false, rej
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false, reject(ReasonInvalidField, "%s: number %.32s is out of range", join(path, name), raw)
	}
	return v, true, nil
}

// beginObject consumes the opening brace of an object value.
func (l *lexer) beginObject(path, name string) (present bool, rej *Rejection) {
	if isNull, rej := l.null(); isNull || rej != nil {
		return false, rej
	}
	if l.peek() != '{' {
		return false, l.wrongKind(path, name, "an object")
	}
	l.i++
	return true, nil
}

// beginArray consumes the opening bracket of an array value.
func (l *lexer) beginArray(path, name string) (present bool, rej *Rejection) {
	if isNull, rej := l.null(); isNull || rej != nil {
		return false, rej
	}
	if l.peek() != '[' {
		return false, l.wrongKind(path, name, "an array")
	}
	l.i++
	return true, nil
}

// fields tracks which members of an object have been read, to reject
// repeats: with two values for one field, which one counts would be up to
// the parser, and different parsers along the pipeline could disagree.
type fields uint32

// first marks field bit as read and reports a repeat.
func (f *fields) first(bit fields, path, name string) *Rejection {
	if *f&bit != 0 {
		return reject(ReasonMalformed, "%s appears more than once", join(path, name))
	}
	*f |= bit
	return nil
}

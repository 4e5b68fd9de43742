package console

import (
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// problem is one of the API's problems with a rule, placed in the text the
// marketer wrote: Line and Col are 1-based, 0 when the problem has no place
// (a field left out is reported at its parent, or at the top).
type problem struct {
	Field  string
	Reason string
	Line   int
	Col    int
	// Excerpt is the line the problem is on, and Caret spaces up to its column.
	Excerpt string
	Caret   string
}

// positioned is a reason that starts with a position inside the field's own
// text, as CEL errors and template errors do ("2:3: undeclared reference").
var positioned = regexp.MustCompile(`^(\d+):(\d+): `)

// pathSegment is one step of a field path: a member name and any indexes.
var pathSegment = regexp.MustCompile(`^([^\[\]]*)((?:\[\d+\])*)$`)

// locate places each problem in the YAML (or JSON, which is YAML) source: at
// the value of its field path, and for a positioned reason at that line and
// column inside the value. A path it cannot follow is placed at its deepest
// part that exists.
func locate(src string, fields []problem) []problem {
	var doc yaml.Node
	parsed := yaml.Unmarshal([]byte(src), &doc) == nil && len(doc.Content) == 1
	lines := strings.Split(src, "\n")
	out := make([]problem, len(fields))
	for i, p := range fields {
		if parsed {
			if n := follow(doc.Content[0], p.Field); n != nil {
				p.Line, p.Col = n.Line, n.Column
				if m := positioned.FindStringSubmatch(p.Reason); m != nil && n.Kind == yaml.ScalarNode {
					l, _ := strconv.Atoi(m[1])
					c, _ := strconv.Atoi(m[2])
					p.Line, p.Col = inside(n, lines, l, c)
				}
			}
		}
		if p.Line > 0 && p.Line <= len(lines) {
			p.Excerpt = strings.TrimRight(lines[p.Line-1], "\r")
			p.Caret = strings.Repeat(" ", max(p.Col-1, 0)) + "^"
		}
		out[i] = p
	}
	return out
}

// follow walks a field path such as tiers[1].perks[0] or condition from
// the document's root and returns the deepest node it reaches.
func follow(n *yaml.Node, path string) *yaml.Node {
	if path == "" {
		return nil
	}
	cur := n
	for seg := range strings.SplitSeq(path, ".") {
		m := pathSegment.FindStringSubmatch(seg)
		if m == nil {
			return cur
		}
		if m[1] != "" {
			next := member(cur, m[1])
			if next == nil {
				return cur
			}
			cur = next
		}
		for idx := range strings.SplitSeq(strings.Trim(m[2], "[]"), "][") {
			if idx == "" {
				continue
			}
			k, _ := strconv.Atoi(idx)
			if cur.Kind != yaml.SequenceNode || k >= len(cur.Content) {
				return cur
			}
			cur = cur.Content[k]
		}
	}
	return cur
}

// member is the value of a mapping's key, or nil.
func member(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// inside turns a line and column within a scalar's value into a place in the
// source: a block scalar (| or >) starts on the line after its indicator, at
// its content's indentation; a quoted one a character after its quote.
func inside(n *yaml.Node, lines []string, line, col int) (int, int) {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		first := n.Line + 1
		if first-1 < len(lines) {
			indent := len(lines[first-1]) - len(strings.TrimLeft(lines[first-1], " "))
			return first + line - 1, indent + col
		}
		return n.Line, n.Column
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return n.Line, n.Column + col
		}
		return n.Line + line - 1, col
	default:
		if line == 1 {
			return n.Line, n.Column + col - 1
		}
		return n.Line + line - 1, col
	}
}

// Package oaspec loads the providers' OpenAPI descriptions
// (shared/provider-specs) and checks JSON documents and form bodies against
// their schemas. It implements only the schema keywords those files use, with
// the standard library, so sandbox and notifier tests can prove that what
// they send and receive is what the providers document.
package oaspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DirEnv names the environment variable that overrides where the spec files
// are looked up.
const DirEnv = "PROVIDER_SPECS_DIR"

// Spec file names in the provider-specs directory.
const (
	TwilioMessages        = "twilio-messages.openapi.json"
	SendGridMailSend      = "sendgrid-mail-send.openapi.json"
	SendGridEmailActivity = "sendgrid-email-activity.openapi.json"
)

// Dir returns the provider-specs directory: $PROVIDER_SPECS_DIR if set,
// otherwise the first "shared/provider-specs" found walking up from the
// working directory (the repository's sibling "shared" directory included).
func Dir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating provider specs: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		candidate := filepath.Join(d, "shared", "provider-specs")
		if st, err := os.Stat(candidate); err == nil && st.IsDir() {
			return candidate, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("locating provider specs: no shared/provider-specs above %s; set %s", wd, DirEnv)
		}
	}
}

// Doc is a loaded OpenAPI document.
type Doc struct {
	root map[string]any
}

// Load reads the named spec file from Dir.
func Load(name string) (*Doc, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("loading spec: %w", err)
	}
	v, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decoding spec %s: %w", name, err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding spec %s: not a JSON object", name)
	}
	return &Doc{root: root}, nil
}

// Decode parses JSON keeping numbers as json.Number, which Validate needs to
// tell integers from other numbers.
func Decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Schema is a JSON schema object from the document.
type Schema map[string]any

// Lookup returns the value at a JSON pointer such as
// "/paths/~1v3~1mail~1send/post" (a leading "#" is allowed).
func (d *Doc) Lookup(pointer string) (any, error) {
	var cur any = d.root
	pointer = strings.TrimPrefix(pointer, "#")
	if pointer == "" {
		return cur, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("spec has no %q in %s", tok, pointer)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("spec has no index %q in %s", tok, pointer)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("spec pointer %s walks into a scalar", pointer)
		}
	}
	return cur, nil
}

// Operation returns the operation object for path and (lower-case) method.
func (d *Doc) Operation(path, method string) (map[string]any, error) {
	v, err := d.Lookup("/paths/" + escape(path) + "/" + strings.ToLower(method))
	if err != nil {
		return nil, err
	}
	op, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("operation %s %s is not an object", method, path)
	}
	return op, nil
}

// RequestSchema returns the request body schema of an operation.
func (d *Doc) RequestSchema(path, method, contentType string) (Schema, error) {
	return d.schemaAt("/paths/" + escape(path) + "/" + strings.ToLower(method) + "/requestBody/content/" + escape(contentType) + "/schema")
}

// ResponseSchema returns the response body schema of an operation.
func (d *Doc) ResponseSchema(path, method, status, contentType string) (Schema, error) {
	return d.schemaAt("/paths/" + escape(path) + "/" + strings.ToLower(method) + "/responses/" + status + "/content/" + escape(contentType) + "/schema")
}

// Component returns a schema from components/schemas.
func (d *Doc) Component(name string) (Schema, error) {
	return d.schemaAt("/components/schemas/" + escape(name))
}

// Resolve follows $ref until it reaches a schema without one.
func (d *Doc) Resolve(s Schema) (Schema, error) {
	for range 32 {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s, nil
		}
		next, err := d.schemaAt(ref)
		if err != nil {
			return nil, err
		}
		s = next
	}
	return nil, errors.New("spec $ref chain too deep")
}

func (d *Doc) schemaAt(pointer string) (Schema, error) {
	v, err := d.Lookup(pointer)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spec value at %s is not a schema object", pointer)
	}
	return d.Resolve(m)
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// Required returns the schema's "required" list.
func Required(s Schema) []string {
	var out []string
	list, _ := s["required"].([]any)
	for _, x := range list {
		if name, ok := x.(string); ok {
			out = append(out, name)
		}
	}
	return out
}

// Properties returns the names of the schema's declared properties,
// including those declared in allOf members.
func (d *Doc) Properties(s Schema) []string {
	var names []string
	s, err := d.Resolve(s)
	if err != nil {
		return nil
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for k := range props {
			names = append(names, k)
		}
	}
	all, _ := s["allOf"].([]any)
	for _, sub := range all {
		if m, ok := sub.(map[string]any); ok {
			names = append(names, d.Properties(m)...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Mode tunes Validate.
type Mode struct {
	// Closed rejects object properties the schema does not declare, so a
	// sandbox cannot invent fields the provider never sends.
	Closed bool
}

// Validate checks v (decoded with Decode) against s and returns every
// violation, each prefixed with its location.
func (d *Doc) Validate(s Schema, v any, mode Mode) []error {
	var errs []error
	d.validate(s, v, "$", mode, &errs)
	return errs
}

func (d *Doc) validate(s Schema, v any, at string, mode Mode, errs *[]error) {
	fail := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...)))
	}
	s, err := d.Resolve(s)
	if err != nil {
		fail("%v", err)
		return
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if m, ok := sub.(map[string]any); ok {
				d.validate(m, v, at, Mode{}, errs)
			}
		}
	}
	if v == nil {
		if nullable, _ := s["nullable"].(bool); !nullable && s["type"] != nil {
			fail("null is not allowed")
		}
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		fail("%v is not one of %v", v, enum)
	}
	typ, _ := s["type"].(string)
	switch typ {
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("want string, got %T", v)
			return
		}
		d.validateString(s, str, fail)
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			fail("want %s, got %T", typ, v)
			return
		}
		f, err := n.Float64()
		if err != nil {
			fail("bad number %s", n)
			return
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); typ == "integer" && err != nil {
			fail("want integer, got %s", n)
		}
		if lo, ok := number(s["minimum"]); ok && f < lo {
			fail("%s is below minimum %v", n, lo)
		}
		if hi, ok := number(s["maximum"]); ok && f > hi {
			fail("%s is above maximum %v", n, hi)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want boolean, got %T", v)
		}
	case "array":
		list, ok := v.([]any)
		if !ok {
			fail("want array, got %T", v)
			return
		}
		if hi, ok := number(s["maxItems"]); ok && float64(len(list)) > hi {
			fail("%d items exceed maxItems %v", len(list), hi)
		}
		if lo, ok := number(s["minItems"]); ok && float64(len(list)) < lo {
			fail("%d items are below minItems %v", len(list), lo)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range list {
				d.validate(items, x, fmt.Sprintf("%s[%d]", at, i), mode, errs)
			}
		}
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			fail("want object, got %T", v)
			return
		}
		for _, name := range Required(s) {
			if _, ok := obj[name]; !ok {
				fail("required property %q is missing", name)
			}
		}
		props, _ := s["properties"].(map[string]any)
		declared := d.Properties(s)
		for k, x := range obj {
			if ps, ok := props[k].(map[string]any); ok {
				d.validate(ps, x, at+"."+k, mode, errs)
				continue
			}
			_, open := s["additionalProperties"]
			if mode.Closed && !open && len(declared) > 0 && !slices.Contains(declared, k) {
				fail("property %q is not declared by the spec", k)
			}
		}
	}
}

func (d *Doc) validateString(s Schema, str string, fail func(string, ...any)) {
	n := utf8.RuneCountInString(str)
	if lo, ok := number(s["minLength"]); ok && float64(n) < lo {
		fail("length %d is below minLength %v", n, lo)
	}
	if hi, ok := number(s["maxLength"]); ok && float64(n) > hi {
		fail("length %d exceeds maxLength %v", n, hi)
	}
	if p, ok := s["pattern"].(string); ok {
		re, err := regexp.Compile(p)
		if err != nil {
			fail("spec pattern %q does not compile: %v", p, err)
		} else if !re.MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	}
	switch s["format"] {
	case "email":
		if a, err := mail.ParseAddress(str); err != nil || a.Address != str {
			fail("%q is not an email address", str)
		}
	case "date-time-rfc-2822":
		if _, err := time.Parse(time.RFC1123Z, str); err != nil {
			fail("%q is not an RFC 2822 date-time", str)
		}
	case "date-time":
		if _, err := time.Parse(time.RFC3339, str); err != nil {
			fail("%q is not an RFC 3339 date-time", str)
		}
	case "uri":
		if _, err := url.Parse(str); err != nil {
			fail("%q is not a URI", str)
		}
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}

// FormToJSON converts a form body into the JSON-like value its
// application/x-www-form-urlencoded schema describes, using each declared
// property's type: integers and booleans are parsed, arrays keep every value.
// Undeclared keys are kept as strings so a Closed validation reports them.
func (d *Doc) FormToJSON(s Schema, form url.Values) map[string]any {
	s, _ = d.Resolve(s)
	props, _ := s["properties"].(map[string]any)
	out := make(map[string]any, len(form))
	for k, vs := range form {
		ps, _ := props[k].(map[string]any)
		ps, _ = d.Resolve(ps)
		typ, _ := ps["type"].(string)
		switch typ {
		case "array":
			list := make([]any, len(vs))
			for i, x := range vs {
				list[i] = x
			}
			out[k] = list
		case "integer", "number":
			if _, err := strconv.ParseFloat(vs[0], 64); err == nil {
				out[k] = json.Number(vs[0])
			} else {
				out[k] = vs[0]
			}
		case "boolean":
			if b, err := strconv.ParseBool(vs[0]); err == nil {
				out[k] = b
			} else {
				out[k] = vs[0]
			}
		default:
			out[k] = vs[0]
		}
	}
	return out
}

package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// registeredRoutes walks the package's sources for the patterns it registers
// on its mux ("GET /v1/rules/{id}"). A pattern that is not a string literal
// fails the test: the document could not be checked against it.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var routes []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") || len(call.Args) != 2 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route whose pattern is not a string literal cannot be checked against openapi.yaml", fset.Position(call.Pos()))
				return true
			}
			pattern, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			routes = append(routes, pattern)
			return true
		})
	}
	slices.Sort(routes)
	return routes
}

// documentedRoutes lists the document's operations as mux patterns.
func documentedRoutes(doc *openapi3.T) []string {
	var routes []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			routes = append(routes, method+" "+path)
		}
	}
	slices.Sort(routes)
	return routes
}

func TestTheOpenAPIDocumentHasEveryRouteAndNoOther(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	registered, documented := registeredRoutes(t), documentedRoutes(doc)
	if len(registered) < 30 {
		t.Fatalf("found only %d registrations: %v", len(registered), registered)
	}
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi.yaml", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("%s is in openapi.yaml but not served", r)
		}
	}
	// Every authenticated operation says what a missing or insufficient credential answers.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil || len(*op.Security) == 0 {
				continue
			}
			want := []string{"401"}
			if _, marketer := (*op.Security)[0]["marketerToken"]; marketer {
				want = append(want, "403")
			}
			for _, status := range want {
				if op.Responses.Value(status) == nil {
					t.Errorf("%s %s does not document its %s", method, path, status)
				}
			}
		}
	}
}

func TestTheServerServesItsOpenAPIDocument(t *testing.T) {
	d := newRuleDesk(t, nil)
	r := d.call(t, 200, "GET", "/v1/openapi.yaml", "", nil)
	want, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.body) != string(want) || r.header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("served %q, %d bytes; want openapi.yaml", r.header.Get("Content-Type"), len(r.body))
	}
}

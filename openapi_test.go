package hearth_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// notInOpenAPI are routes the server registers that docs/openapi.json
// cannot or need not describe, with the reason.
var notInOpenAPI = map[string]string{
	"/":                    "the not-found fallback",
	"/hearth/v1":           "the WebTransport session (HTTP/3 CONNECT): docs/transport.md",
	"/hearth/v1/admin/":    "the prefix of the admin routes, each listed from homeserver/admin",
	"/hearth/federation/":  "server-to-server federation: docs/federation.md",
	"/.well-known/hearth/": "server-to-server key discovery: docs/federation.md",
}

// registeredRoutes reads the route patterns that the non-test Go files of
// dir register with HandleFunc or Handle (string literals, package string
// constants and their concatenations), as "METHOD PATH" or "PATH".
func registeredRoutes(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var calls []*ast.CallExpr
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
					for _, sp := range g.Specs {
						vs := sp.(*ast.ValueSpec)
						for i, n := range vs.Names {
							if i < len(vs.Values) {
								if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
									consts[n.Name], _ = strconv.Unquote(lit.Value)
								}
							}
						}
					}
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if sel, ok := c.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "HandleFunc" || sel.Sel.Name == "Handle") && len(c.Args) == 2 {
						calls = append(calls, c)
					}
				}
				return true
			})
		}
	}
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			s, ok := consts[e.Name]
			return s, ok
		case *ast.BinaryExpr:
			a, ok1 := eval(e.X)
			b, ok2 := eval(e.Y)
			return a + b, ok1 && ok2 && e.Op == token.ADD
		}
		return "", false
	}
	var out []string
	for _, c := range calls {
		p, ok := eval(c.Args[0])
		if !ok {
			t.Fatalf("%s: a route pattern this test cannot read; use literals and string constants", fset.Position(c.Pos()))
		}
		out = append(out, p)
	}
	return out
}

// TestOpenAPI: docs/openapi.json is an OpenAPI 3 document whose operations
// are exactly the REST routes the server registers (the client routes of
// homeserver/transport and the admin routes of homeserver/admin under
// /hearth/v1/admin), so the two cannot drift apart.
func TestOpenAPI(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Info    struct{ Title, Version string }       `json:"info"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("docs/openapi.json: not an OpenAPI 3 document: openapi %q, info %+v", doc.OpenAPI, doc.Info)
	}
	// Every $ref points into the document.
	var whole any
	if err := json.Unmarshal(b, &whole); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if ref, ok := x.(string); ok && k == "$ref" {
					if !resolves(whole, ref) {
						t.Errorf("docs/openapi.json: $ref %q resolves to nothing", ref)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(whole)
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	wildcard := regexp.MustCompile(`\{([^}]+)\}`)
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for m, raw := range item {
			if !slices.Contains(methods, m) {
				continue
			}
			documented[strings.ToUpper(m)+" "+path] = true
			var op struct {
				Responses  map[string]json.RawMessage  `json:"responses"`
				Parameters []struct{ Name, In string } `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil || len(op.Responses) == 0 {
				t.Errorf("%s %s: no responses (%v)", m, path, err)
			}
			for _, w := range wildcard.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct{ Name, In string }) bool { return p.Name == w[1] && p.In == "path" }) {
					t.Errorf("%s %s: path parameter %s not declared", m, path, w[1])
				}
			}
		}
	}

	registered := map[string]bool{}
	for _, p := range registeredRoutes(t, filepath.Join("homeserver", "transport")) {
		if _, skip := notInOpenAPI[p]; !skip {
			registered[p] = true
		}
	}
	for _, p := range registeredRoutes(t, filepath.Join("homeserver", "admin")) {
		if p == "/" {
			continue
		}
		method, path, ok := strings.Cut(p, " ")
		rest, isV1 := strings.CutPrefix(path, "/v1/")
		if !ok || !isV1 {
			t.Errorf("admin route %q: want METHOD /v1/...", p)
			continue
		}
		registered[method+" /hearth/v1/admin/"+rest] = true
	}
	if len(registered) < 10 {
		t.Fatalf("found only %d routes: %v", len(registered), registered)
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is served but not in docs/openapi.json", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("docs/openapi.json describes %s, which the server does not serve", r)
		}
	}
}

// resolves reports whether ref ("#/a/b") names a value inside doc.
func resolves(doc any, ref string) bool {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	for _, k := range strings.Split(path, "/") {
		m, ok := doc.(map[string]any)
		if !ok {
			return false
		}
		if doc, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

package hearth_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// depRule is one import rule of DESIGN.md ("Parts and dependency
// direction"): the packages it applies to must not depend, directly or
// transitively (test files excluded), on a package matching forbidden,
// unless that package matches allowed.
//
// Every path in a rule names a package and all packages below it:
// "hearth/homeserver" covers hearth/homeserver/wire, "net" covers
// net/http. "*" is every package.
type depRule struct {
	from       string   // the packages it applies to; "*": every package outside hearth/cmd
	fromExcept []string // packages under from it does not apply to
	forbidden  []string
	allowed    []string // allowed despite matching forbidden
}

// homeserverEdge are the transport adapters: the only packages under
// hearth/homeserver that may use a transport library. The rest is the
// core, which serves clients through interfaces the adapters call.
var homeserverEdge = []string{"hearth/homeserver/transport", "hearth/homeserver/certs"}

var depRules = []depRule{
	{from: "hearth/keys", forbidden: []string{"net", "database/sql", "hearth/storage", "hearth/homeserver", "hearth/federation",
		"hearth/client", "github.com/quic-go", "github.com/coder/websocket", "github.com/mattn/go-sqlite3", "go.etcd.io/bbolt"}},
	{from: "hearth/storage", forbidden: []string{"net/http", "github.com/quic-go", "github.com/coder/websocket",
		"hearth/homeserver", "hearth/federation", "hearth/client"}},
	{from: "hearth/federation", forbidden: []string{"hearth/homeserver", "hearth/client"}},
	{from: "hearth/homeserver", forbidden: []string{"hearth/client"}},
	// The homeserver core never uses a transport library itself.
	{from: "hearth/homeserver", fromExcept: homeserverEdge,
		forbidden: []string{"github.com/quic-go/webtransport-go", "github.com/coder/websocket"}},
	{from: "hearth/homeserver/admin", forbidden: []string{"hearth/homeserver/transport"}},
	{from: "hearth/client", forbidden: []string{"hearth/storage", "hearth/homeserver", "hearth/federation", "github.com/mattn/go-sqlite3"},
		allowed: []string{"hearth/homeserver/wire"}},
	{from: "*", forbidden: []string{"github.com/spf13/cobra"}},
	{from: "*", forbidden: []string{"hearth/cmd"}},
}

// covers reports whether pattern names pkg or a package below it.
func covers(pattern, pkg string) bool {
	return pattern == "*" || pkg == pattern || strings.HasPrefix(pkg, pattern+"/")
}

func coveredByAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return covers(p, pkg) })
}

// appliesTo reports whether the rule constrains pkg's dependencies.
func (r depRule) appliesTo(pkg string) bool {
	if r.from == "*" {
		return !covers("hearth/cmd", pkg) // cmd may import anything
	}
	return covers(r.from, pkg) && !coveredByAny(r.fromExcept, pkg)
}

// forbids reports whether the rule forbids pkg to depend on dep.
func (r depRule) forbids(pkg, dep string) bool {
	return r.appliesTo(pkg) && coveredByAny(r.forbidden, dep) && !coveredByAny(r.allowed, dep)
}

// TestDepRulesMatch: the matcher covers subpackages on both sides, and
// stops at path elements. The first two cases passed unnoticed when a rule
// matched only the exact package.
func TestDepRulesMatch(t *testing.T) {
	for _, tc := range []struct {
		pkg, dep string
		want     bool
	}{
		{"hearth/storage", "hearth/homeserver/wire", true},
		{"hearth/keys/media", "hearth/federation/fedwire", true},
		{"hearth/storage", "hearth/homeserver", true},
		{"hearth/storage/sqlite", "net/http", true},
		{"hearth/storage", "net/http/httptrace", true},
		{"hearth/storage", "net", false},
		{"hearth/storage", "github.com/mattn/go-sqlite3", false},
		{"hearth/keys", "net/netip", true},
		{"hearth/keys/mls/codec", "database/sql/driver", true},
		{"hearth/keys/testutil", "testing", false},
		{"hearth/keysmith", "net", false},
		{"hearth/keys", "hearth/storagex", false},
		{"hearth/federation", "hearth/homeserver/wire", true},
		{"hearth/federation", "hearth/storage", false},
		{"hearth/client", "hearth/homeserver/wire", false},
		{"hearth/client/transport", "hearth/homeserver/transport", true},
		{"hearth/client", "hearth/homeserver", true},
		{"hearth/homeserver", "github.com/quic-go/webtransport-go", true},
		{"hearth/homeserver", "github.com/coder/websocket", true},
		{"hearth/homeserver/wire", "github.com/coder/websocket", true},
		{"hearth/homeserver/hub", "github.com/quic-go/webtransport-go", true},
		{"hearth/homeserver", "github.com/quic-go/quic-go", false},
		{"hearth/homeserver/transport", "github.com/quic-go/webtransport-go", false},
		{"hearth/homeserver/transport", "github.com/coder/websocket", false},
		{"hearth/homeserver/transportx", "github.com/coder/websocket", true},
		{"hearth/homeserver/certs", "github.com/quic-go/webtransport-go", false},
		{"hearth/homeserver/admin", "hearth/homeserver/transport", true},
		{"hearth/homeserver/admin", "hearth/homeserver/wire", false},
		{"hearth/homeserver", "hearth/homeserver/transport", false}, // its libraries are caught transitively
		{"hearth/homeserver", "hearth/client/store", true},
		{"hearth/federation", "github.com/spf13/cobra", true},
		{"hearth/client/loadgen", "github.com/spf13/cobra/doc", true},
		{"hearth/cmd/hearth", "github.com/spf13/cobra", false},
		{"hearth/cmd/hearth", "hearth/storage", false},
		{"hearth/homeserver", "hearth/cmd/hearth", true},
		{"hearth", "hearth/cmd/hearth", true},
	} {
		var by []int
		for i, r := range depRules {
			if r.forbids(tc.pkg, tc.dep) {
				by = append(by, i)
			}
		}
		if got := len(by) > 0; got != tc.want {
			t.Errorf("%s depending on %s: forbidden %v (rules %v), want %v", tc.pkg, tc.dep, got, by, tc.want)
		}
	}
}

// listed is one package as go list reports it.
type listed struct {
	path    string
	source  bool     // has non-test Go files
	imports []string // direct imports of its non-test files
}

// goList lists every package of the module and everything it depends
// on, with direct imports (test files excluded), in go list's order.
func goList(t *testing.T) []listed {
	t.Helper()
	// Stat every Go file so that `go test` caching notices edits: the real
	// reading happens in the go list subprocess, which the cache cannot see.
	filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".go") || p == "go.mod") {
			os.Stat(p)
		}
		return nil
	})
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{.ImportPath}} {{if or .GoFiles .CgoFiles}}source{{else}}tests-only{{end}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			t.Fatalf("go list line %q", sc.Text())
		}
		pkgs = append(pkgs, listed{path: f[0], source: f[1] == "source", imports: f[2:]})
	}
	hearth := 0
	for _, p := range pkgs {
		if covers("hearth", p.path) {
			hearth++
		}
	}
	if hearth < 5 {
		t.Fatalf("only %d hearth packages listed; go list output unexpected:\n%s", hearth, out)
	}
	return pkgs
}

// chains returns, for every package pkg depends on, the shortest import
// chain from pkg to it (pkg first).
func chains(graph map[string][]string, pkg string) map[string][]string {
	paths := map[string][]string{pkg: {pkg}}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, d := range graph[p] {
			if _, seen := paths[d]; !seen {
				paths[d] = append(slices.Clip(paths[p]), d)
				queue = append(queue, d)
			}
		}
	}
	delete(paths, pkg)
	return paths
}

func TestImportDirections(t *testing.T) {
	pkgs := goList(t)
	graph := map[string][]string{}
	for _, p := range pkgs {
		graph[p.path] = p.imports
	}
	for _, p := range pkgs {
		if !covers("hearth", p.path) {
			continue
		}
		deps := chains(graph, p.path)
		names := make([]string, 0, len(deps))
		for d := range deps {
			names = append(names, d)
		}
		slices.Sort(names)
		for _, d := range names {
			chain := deps[d]
			for _, r := range depRules {
				// Report the first forbidden package on the chain, not
				// every package below it.
				if r.forbids(p.path, d) && !slices.ContainsFunc(chain[1:len(chain)-1], func(via string) bool { return r.forbids(p.path, via) }) {
					t.Errorf("%s depends on %s (%s), which the import rules forbid (from %s, forbidden %v)",
						p.path, d, strings.Join(chain, " → "), r.from, r.forbidden)
				}
			}
		}
	}
}

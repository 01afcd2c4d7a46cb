package hearth_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The import rules of DESIGN.md ("Parts and dependency direction"). Each
// rule: packages under `from` must not depend (directly or transitively,
// test files excluded) on any package matching `forbidden`.
var depRules = []struct {
	from      string
	forbidden []string
	except    []string // allowed despite matching forbidden
}{
	{from: "hearth/keys", forbidden: []string{"net", "net/*", "database/sql", "hearth/storage", "hearth/homeserver", "hearth/federation", "hearth/client", "github.com/quic-go/*", "github.com/mattn/go-sqlite3", "go.etcd.io/bbolt"}},
	{from: "hearth/storage", forbidden: []string{"net/http", "github.com/quic-go/*", "hearth/homeserver", "hearth/federation", "hearth/client"}},
	{from: "hearth/federation", forbidden: []string{"hearth/homeserver", "hearth/client"}},
	{from: "hearth/homeserver", forbidden: []string{"hearth/client"}},
	{from: "hearth/client", forbidden: []string{"hearth/storage", "hearth/homeserver", "hearth/homeserver/*", "hearth/federation", "github.com/mattn/go-sqlite3"},
		except: []string{"hearth/homeserver/wire"}},
	{from: "*", forbidden: []string{"github.com/spf13/cobra"}, except: []string{}},
	{from: "*", forbidden: []string{"hearth/cmd/*"}},
}

func match(pattern, pkg string) bool {
	if pattern == "*" {
		return true
	}
	if strings.HasSuffix(pattern, "/*") {
		return strings.HasPrefix(pkg, strings.TrimSuffix(pattern, "*"))
	}
	return pkg == pattern
}

func TestImportDirections(t *testing.T) {
	// Stat every Go file so that `go test` caching notices edits: the real
	// reading happens in the go list subprocess, which the cache cannot see.
	filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
			os.Stat(p)
		}
		return nil
	})
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	checked := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		checked++
		for _, r := range depRules {
			if r.from != "*" && pkg != r.from && !strings.HasPrefix(pkg, r.from+"/") {
				continue
			}
			if r.from == "*" && strings.HasPrefix(pkg, "hearth/cmd/") {
				continue // cmd may import anything
			}
		dep:
			for _, d := range deps {
				for _, e := range r.except {
					if match(e, d) {
						continue dep
					}
				}
				for _, f := range r.forbidden {
					if match(f, d) {
						// A "hearth/x" rule must not forbid hearth/x itself.
						if d == pkg {
							continue
						}
						t.Errorf("%s depends on %s, which DESIGN.md forbids", pkg, d)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages listed; go list output unexpected", checked)
	}
}

package hearth_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the import block of "+archDoc+" from go list")

const (
	archDoc = "docs/architecture.md"
	// archMarker is the line just above the fenced import block.
	archMarker = "<!-- imports: generated from go list; regenerate with `go test . -run TestArchitectureDoc -update` -->"
)

// importBlock is every hearth package with non-test Go files, one a line
// in path order, with its direct hearth imports (test files excluded).
func importBlock(pkgs []listed) string {
	pkgs = slices.Clone(pkgs)
	slices.SortFunc(pkgs, func(a, b listed) int { return strings.Compare(a.path, b.path) })
	var lines []string
	for _, p := range pkgs {
		if !covers("hearth", p.path) || !p.source {
			continue
		}
		var own []string
		for _, imp := range p.imports {
			if covers("hearth", imp) {
				own = append(own, imp)
			}
		}
		slices.Sort(own)
		lines = append(lines, strings.TrimSpace(p.path+": "+strings.Join(own, " ")))
	}
	return strings.Join(lines, "\n") + "\n"
}

// splitDoc cuts doc around the fenced block after archMarker.
func splitDoc(doc string) (before, block, after string, err error) {
	i := strings.Index(doc, archMarker+"\n```text\n")
	if i < 0 {
		return "", "", "", fmt.Errorf("no %q line followed by a ```text block", archMarker)
	}
	start := i + len(archMarker+"\n```text\n")
	n := strings.Index(doc[start:], "```\n")
	if n < 0 {
		return "", "", "", fmt.Errorf("the import block is not closed")
	}
	return doc[:start], doc[start : start+n], doc[start+n:], nil
}

// TestArchitectureDoc: the import block in docs/architecture.md is what
// go list says; -update rewrites it.
func TestArchitectureDoc(t *testing.T) {
	want := importBlock(goList(t))
	b, err := os.ReadFile(archDoc)
	if err != nil {
		t.Fatal(err)
	}
	before, got, after, err := splitDoc(string(b))
	if err != nil {
		t.Fatalf("%s: %v", archDoc, err)
	}
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(archDoc, []byte(before+want+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the import block of %s", archDoc)
		return
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for _, l := range wantLines {
		if !slices.Contains(gotLines, l) {
			t.Errorf("%s lacks: %s", archDoc, l)
		}
	}
	for _, l := range gotLines {
		if !slices.Contains(wantLines, l) {
			t.Errorf("%s has, go list does not: %s", archDoc, l)
		}
	}
	t.Errorf("the import block of %s differs from go list; if the code is right, run: go test . -run TestArchitectureDoc -update", archDoc)
}

func TestSplitDoc(t *testing.T) {
	doc := "# picture\n\n" + archMarker + "\n```text\na: b\nb:\n```\n\nmore\n"
	before, block, after, err := splitDoc(doc)
	if err != nil || block != "a: b\nb:\n" || before+block+after != doc || after != "```\n\nmore\n" {
		t.Fatalf("splitDoc = %q, %q, %q, %v", before, block, after, err)
	}
	for _, bad := range []string{"# no block\n", archMarker + "\n```text\na: b\n", archMarker + "\n```go\na: b\n```\n"} {
		if _, _, _, err := splitDoc(bad); err == nil {
			t.Errorf("splitDoc(%q) found a block", bad)
		}
	}
}

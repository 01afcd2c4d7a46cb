package mls

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// layers ranks the MLS packages: a package may import (outside its tests)
// only MLS packages of a lower rank, and nothing else of the module.
var layers = map[string]int{
	"codec":     0,
	"treemath":  0,
	"suite":     1,
	"schedule":  2,
	"message":   3,
	"treekem":   4,
	"handshake": 5,
	".":         6,
}

// TestLayers: imports between keys/mls and its subpackages run one way.
func TestLayers(t *testing.T) {
	const prefix = "hearth/keys/mls/"
	for dir, rank := range layers {
		p, err := build.ImportDir(filepath.FromSlash(dir), 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, "hearth/") {
				continue
			}
			dep, ok := layers[strings.TrimPrefix(imp, prefix)]
			if !strings.HasPrefix(imp, prefix) || !ok || dep >= rank {
				t.Errorf("keys/mls/%s imports %s", dir, imp)
			}
		}
	}
}

package treekem

import (
	"bytes"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

func FuzzRatchetTree(f *testing.F) {
	var ms []map[string]hexBytes
	loadVectors(f, "messages.json", &ms)
	for i, v := range ms {
		if i%10 == 0 { // a spread of cases keeps the corpus small
			f.Add([]byte(v["ratchet_tree"]))
		}
	}
	var tv []treeValidationVector
	loadVectors(f, "tree-validation.json", &tv)
	for _, v := range tv[:14] {
		f.Add([]byte(v.Tree))
	}
	s, _ := suite.Lookup(suite.Mandatory)
	f.Fuzz(func(t *testing.T, b []byte) {
		var nodes message.RatchetTreeNodes
		if err := nodes.Unmarshal(b); err != nil {
			return
		}
		if got := nodes.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, got)
		}
		tree, err := NewRatchetTree(s, nodes)
		if err != nil {
			return
		}
		if !bytes.Equal(tree.Marshal(), b) {
			t.Fatal("tree re-encoding differs")
		}
		if tree.Width() > 1<<12 {
			return // keep each run fast
		}
		_ = tree.TreeHash()
		_ = tree.Verify([]byte("g"))
		for x := range tree.Width() {
			_ = tree.Resolution(treemath.NodeIndex(x))
		}
		for _, l := range tree.Members() {
			_ = tree.FilteredDirectPath(l)
		}
	})
}

package treekem

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

type treeValidationVector struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hexBytes   `json:"tree"`
	GroupID     hexBytes   `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []hexBytes `json:"tree_hashes"`
}

func TestTreeValidationVectors(t *testing.T) {
	var vs []treeValidationVector
	loadVectors(t, "tree-validation.json", &vs)
	c := newTally("tree-validation.json")
	for i, v := range vs {
		c.SuiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			tree, err := UnmarshalRatchetTree(s, v.Tree)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tree.Marshal(), v.Tree) {
				t.Error("tree re-encoding differs")
			}
			if int(tree.Width()) != len(v.Resolutions) || len(v.TreeHashes) != len(v.Resolutions) {
				t.Fatalf("width %d, vector has %d resolutions, %d hashes", tree.Width(), len(v.Resolutions), len(v.TreeHashes))
			}
			hs := tree.TreeHashes()
			for x := range v.Resolutions {
				var got []uint32
				for _, y := range tree.Resolution(treemath.NodeIndex(x)) {
					got = append(got, uint32(y))
				}
				if !slices.Equal(got, v.Resolutions[x]) {
					t.Errorf("resolution(%d) = %v, want %v", x, got, v.Resolutions[x])
				}
				if !bytes.Equal(hs[x], v.TreeHashes[x]) {
					t.Errorf("tree hash(%d) = %x, want %x", x, hs[x], v.TreeHashes[x])
				}
			}
			if err := tree.VerifyParentHashes(); err != nil {
				t.Error(err)
			}
			if err := tree.Verify(v.GroupID); err != nil {
				t.Error(err)
			}
			// A wrong group id must break the (update/commit) leaf signatures.
			if err := tree.VerifyLeafSignatures(append(bytes.Clone(v.GroupID), 1)); err == nil && hasCommitLeaf(tree) {
				t.Error("leaf signatures verified under a wrong group id")
			}
		})
	}
	c.Report(t)
}

func hasCommitLeaf(t *RatchetTree) bool {
	for _, l := range t.Members() {
		if t.Leaf(l).Source != message.SourceKeyPackage {
			return true
		}
	}
	return false
}

type treeOperationsVector struct {
	CipherSuite    uint16   `json:"cipher_suite"`
	TreeBefore     hexBytes `json:"tree_before"`
	Proposal       hexBytes `json:"proposal"`
	ProposalSender uint32   `json:"proposal_sender"`
	TreeHashBefore hexBytes `json:"tree_hash_before"`
	TreeAfter      hexBytes `json:"tree_after"`
	TreeHashAfter  hexBytes `json:"tree_hash_after"`
}

func TestTreeOperationsVectors(t *testing.T) {
	var vs []treeOperationsVector
	loadVectors(t, "tree-operations.json", &vs)
	c := newTally("tree-operations.json")
	for i, v := range vs {
		c.SuiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			tree, err := UnmarshalRatchetTree(s, v.TreeBefore)
			if err != nil {
				t.Fatal(err)
			}
			if got := tree.TreeHash(); !bytes.Equal(got, v.TreeHashBefore) {
				t.Errorf("tree hash before = %x, want %x", got, v.TreeHashBefore)
			}
			var p message.Proposal
			if err := p.Unmarshal(v.Proposal); err != nil {
				t.Fatal(err)
			}
			before := tree.Clone()
			if _, err := tree.ApplyProposal(&p, treemath.LeafIndex(v.ProposalSender)); err != nil {
				t.Fatalf("apply proposal type %d: %v", p.Type, err)
			}
			if !bytes.Equal(tree.Marshal(), v.TreeAfter) {
				t.Errorf("proposal type %d: tree after differs", p.Type)
			}
			if got := tree.TreeHash(); !bytes.Equal(got, v.TreeHashAfter) {
				t.Errorf("tree hash after = %x, want %x", got, v.TreeHashAfter)
			}
			if !bytes.Equal(before.Marshal(), v.TreeBefore) {
				t.Error("applying a proposal changed a clone of the tree")
			}
		})
	}
	c.Report(t)
}

func TestParentHashTamperDetected(t *testing.T) {
	var vs []treeValidationVector
	loadVectors(t, "tree-validation.json", &vs)
	checked := 0
	for i, v := range vs {
		s, err := suite.Lookup(suite.ID(v.CipherSuite))
		if err != nil {
			continue
		}
		tree, err := UnmarshalRatchetTree(s, v.Tree)
		if err != nil {
			t.Fatal(err)
		}
		for x := treemath.NodeIndex(1); uint32(x) < tree.Width(); x += 2 {
			p := tree.ParentNode(x)
			if p == nil {
				continue
			}
			bad := tree.Clone()
			c := *p
			c.EncryptionKey = append(bytes.Clone(p.EncryptionKey[:len(p.EncryptionKey)-1]), p.EncryptionKey[len(p.EncryptionKey)-1]^1)
			bad.nodes[x] = &message.Node{Parent: &c}
			if err := bad.VerifyParentHashes(); err == nil {
				t.Errorf("case %d: tampered key at node %d accepted", i, x)
			}
			checked++
			break
		}
	}
	if checked == 0 {
		t.Fatal("no tree with a parent node")
	}
}

func TestNewRatchetTreeRejects(t *testing.T) {
	s, err := suite.Lookup(suite.Mandatory)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &message.Node{Leaf: &message.LeafNode{Source: message.SourceKeyPackage}}
	parent := &message.Node{Parent: &message.ParentNode{}}
	for name, nodes := range map[string]message.RatchetTreeNodes{
		"empty":          {},
		"trailing blank": {leaf, nil, nil},
		"parent at leaf": {parent},
		"leaf at parent": {leaf, leaf, leaf},
		"both set":       {{Leaf: leaf.Leaf, Parent: parent.Parent}},
	} {
		if _, err := NewRatchetTree(s, nodes); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tree, err := NewRatchetTree(s, message.RatchetTreeNodes{leaf, nil, nil, nil, leaf})
	if err != nil {
		t.Fatal(err)
	}
	if tree.NumLeaves() != 4 || tree.Width() != 7 || len(tree.Nodes()) != 5 {
		t.Errorf("padded tree: %d leaves, width %d, %d encoded nodes", tree.NumLeaves(), tree.Width(), len(tree.Nodes()))
	}
	if err := tree.RemoveLeaf(1); err == nil {
		t.Error("removed a blank leaf")
	}
	if err := tree.RemoveLeaf(2); err != nil || tree.NumLeaves() != 1 {
		t.Errorf("remove rightmost: err %v, %d leaves", err, tree.NumLeaves())
	}
	if l := tree.AddLeaf(leaf.Leaf); l != 1 {
		t.Errorf("AddLeaf filled leaf %d, want 1", l)
	}
	if l := tree.AddLeaf(leaf.Leaf); l != 2 || tree.NumLeaves() != 4 {
		t.Errorf("AddLeaf extended to leaf %d with %d leaves", l, tree.NumLeaves())
	}
}

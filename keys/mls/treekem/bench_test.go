package treekem

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// fullTree builds an n-leaf tree with every node set (keys derived from
// the node index), the state of a group where every member has
// committed: UpdatePaths then encrypt to one key per copath node. The
// leaf `signerLeaf` uses signer's key so it can commit. It returns the
// private state of every leaf.
func fullTree(b *testing.B, s *suite.Suite, n uint32, signer *suite.Signer, signerLeaf treemath.LeafIndex) (*RatchetTree, []*PrivateTree) {
	b.Helper()
	width := treemath.NodeWidth(n)
	nodes := make(message.RatchetTreeNodes, width)
	privs := make([]suite.HPKEPrivateKey, width)
	for x := range width {
		var ikm [32]byte
		binary.BigEndian.PutUint32(ikm[:], x)
		priv, pub, err := s.DeriveKeyPair(ikm[:])
		if err != nil {
			b.Fatal(err)
		}
		privs[x] = priv
		if treemath.NodeIndex(x).IsLeaf() {
			nodes[x] = &message.Node{Leaf: &message.LeafNode{EncryptionKey: pub, SignatureKey: signer.Public(),
				Credential:   message.Credential{Type: message.CredentialBasic, Identity: ikm[:4]},
				Capabilities: message.Capabilities{Versions: []message.ProtocolVersion{message.MLS10}, CipherSuites: []message.CipherSuite{s.ID()}},
				Source:       message.SourceUpdate}}
		} else {
			nodes[x] = &message.Node{Parent: &message.ParentNode{EncryptionKey: pub, ParentHash: []byte{}}}
		}
	}
	tree, err := NewRatchetTree(s, nodes)
	if err != nil {
		b.Fatal(err)
	}
	states := make([]*PrivateTree, n)
	for l := range treemath.LeafIndex(n) {
		p := NewPrivateTree(l, privs[l.NodeIndex()])
		for _, x := range treemath.DirectPath(l.NodeIndex(), n) {
			p.keys[x] = privs[x]
		}
		states[l] = p
	}
	return tree, states
}

var benchSuites = []suite.ID{suite.Mandatory, suite.Default}

func BenchmarkTreeHash1024(b *testing.B) {
	for _, id := range benchSuites {
		s, _ := suite.Lookup(id)
		signer, _ := s.GenerateSignatureKey(rand.Reader)
		tree, _ := fullTree(b, s, 1024, signer, 0)
		b.Run(id.String(), func(b *testing.B) {
			for b.Loop() {
				tree.TreeHash()
			}
		})
	}
}

func BenchmarkUpdatePath1024(b *testing.B) {
	for _, id := range benchSuites {
		s, _ := suite.Lookup(id)
		signer, _ := s.GenerateSignatureKey(rand.Reader)
		tree, privs := fullTree(b, s, 1024, signer, 0)
		ctx := message.GroupContext{Version: message.MLS10, CipherSuite: id, GroupID: []byte("bench"), Epoch: 7}
		b.Run("generate/"+id.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := tree.GenerateUpdatePath(rand.Reader, 0, *tree.Leaf(0), signer, ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		res, err := tree.GenerateUpdatePath(rand.Reader, 0, *tree.Leaf(0), signer, ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("process/"+id.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := tree.ProcessUpdatePath(privs[1023], 0, res.Path, ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdatePath1024Fresh measures the expensive case: right after
// the creator added 1023 members, most parents are blank, so a member's
// UpdatePath encrypts to about half the group.
func BenchmarkUpdatePath1024Fresh(b *testing.B) {
	s, _ := suite.Lookup(suite.Mandatory)
	g := newTestGroup(b, s, 1024)
	from := treemath.LeafIndex(1023)
	m := g.members[from]
	b.Run("generate", func(b *testing.B) {
		for b.Loop() {
			if _, err := g.tree.GenerateUpdatePath(rand.Reader, from, *g.tree.Leaf(from), m.signer, g.ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	res, err := g.tree.GenerateUpdatePath(rand.Reader, from, *g.tree.Leaf(from), m.signer, g.ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			if _, err := g.tree.ProcessUpdatePath(g.members[0].priv, from, res.Path, g.ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyTree1024 measures what a member joining a 1,024-member
// group checks: every leaf signature and every parent hash.
func BenchmarkVerifyTree1024(b *testing.B) {
	s, _ := suite.Lookup(suite.Mandatory)
	g := newTestGroup(b, s, 1024)
	for _, k := range []int{1023, 300} { // commits so parent hashes chain
		g.commit(b, k)
	}
	for b.Loop() {
		if err := g.tree.Verify(g.ctx.GroupID); err != nil {
			b.Fatal(err)
		}
	}
}

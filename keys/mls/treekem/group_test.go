package treekem

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// testMember is one client of a group built from scratch in tests.
type testMember struct {
	signer   *suite.Signer
	kp       *message.KeyPackage
	initPriv suite.HPKEPrivateKey
	leafPriv suite.HPKEPrivateKey
	priv     *PrivateTree
}

func newTestMember(t testing.TB, s *suite.Suite, rnd io.Reader, name string) *testMember {
	t.Helper()
	signer, err := s.GenerateSignatureKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	leafPriv, leafPub, err := s.GenerateKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	initPriv, initPub, err := s.GenerateKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	kp := &message.KeyPackage{Version: message.MLS10, CipherSuite: s.ID(), InitKey: initPub, LeafNode: message.LeafNode{
		EncryptionKey: leafPub,
		SignatureKey:  signer.Public(),
		Credential:    message.Credential{Type: message.CredentialBasic, Identity: []byte(name)},
		Capabilities: message.Capabilities{Versions: []message.ProtocolVersion{message.MLS10}, CipherSuites: []message.CipherSuite{s.ID()},
			Credentials: []message.CredentialType{message.CredentialBasic}},
		Source:   message.SourceKeyPackage,
		Lifetime: message.Lifetime{NotBefore: 0, NotAfter: 1<<64 - 1},
	}}
	if err := kp.LeafNode.Sign(s, signer, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := kp.Sign(s, signer); err != nil {
		t.Fatal(err)
	}
	return &testMember{signer: signer, kp: kp, initPriv: initPriv, leafPriv: leafPriv}
}

// testGroup is a group whose creator (leaf 0) added n-1 members in one
// commit with an UpdatePath and a Welcome, as a real client would.
type testGroup struct {
	s       *suite.Suite
	tree    *RatchetTree
	ctx     message.GroupContext
	members []*testMember
}

func newTestGroup(t testing.TB, s *suite.Suite, n int) *testGroup {
	t.Helper()
	rnd := rand.Reader
	g := &testGroup{s: s, ctx: message.GroupContext{Version: message.MLS10, CipherSuite: s.ID(), GroupID: []byte("test group"),
		Epoch: 1, ConfirmedTranscriptHash: []byte{}}}
	for i := range n {
		g.members = append(g.members, newTestMember(t, s, rnd, fmt.Sprint("member", i)))
	}
	creator := g.members[0]
	tree := NewOneMemberTree(s, &creator.kp.LeafNode)
	var added []treemath.LeafIndex
	for _, m := range g.members[1:] {
		if err := m.kp.Verify(s); err != nil {
			t.Fatal(err)
		}
		added = append(added, tree.AddLeaf(&m.kp.LeafNode))
	}
	res, err := tree.GenerateUpdatePath(rnd, 0, creator.kp.LeafNode, creator.signer, g.ctx, added)
	if err != nil {
		t.Fatal(err)
	}
	creator.priv = res.Private
	g.tree, g.ctx = res.Tree, *res.GroupContext
	joiner := make([]byte, s.Nh())
	if _, err := io.ReadFull(rnd, joiner); err != nil {
		t.Fatal(err)
	}
	gi := &message.GroupInfo{GroupContext: g.ctx, ConfirmationTag: []byte("tag"), Signer: 0}
	if err := gi.Sign(s, creator.signer); err != nil {
		t.Fatal(err)
	}
	var wms []message.WelcomeMember
	for i, m := range g.members[1:] {
		anc := treemath.CommonAncestor(0, added[i].NodeIndex())
		wms = append(wms, message.WelcomeMember{KeyPackage: m.kp, PathSecret: res.PathSecrets[anc]})
	}
	w, err := message.SealWelcome(s, gi, joiner, nil, nil, wms)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range g.members[1:] {
		g.join(t, w, m, added[i])
	}
	return g
}

// join processes the Welcome w as member m, which sits at leaf l.
func (g *testGroup) join(t testing.TB, w *message.Welcome, m *testMember, l treemath.LeafIndex) {
	t.Helper()
	gs, err := message.OpenGroupSecrets(g.s, w, m.kp, m.initPriv)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := message.OpenGroupInfo(g.s, w, gs.JoinerSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gi.Verify(g.s, g.tree.Leaf(gi.Signer).SignatureKey); err != nil {
		t.Fatal(err)
	}
	p := NewPrivateTree(l, m.leafPriv)
	if m.priv, err = p.WithJoinPathSecret(g.tree, gi.Signer, gs.PathSecret); err != nil {
		t.Fatal(err)
	}
}

// commit has member k create an UpdatePath; every other member processes
// it and must reach the same commit secret, tree and private state.
func (g *testGroup) commit(t testing.TB, k int) {
	t.Helper()
	from := treemath.LeafIndex(k)
	m := g.members[k]
	res, err := g.tree.GenerateUpdatePath(rand.Reader, from, *g.tree.Leaf(from), m.signer, g.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for j, o := range g.members {
		if j == k {
			continue
		}
		got, err := g.tree.ProcessUpdatePath(o.priv, from, res.Path, g.ctx, nil)
		if err != nil {
			t.Fatalf("member %d processing commit of %d: %v", j, k, err)
		}
		if !bytes.Equal(got.CommitSecret, res.CommitSecret) || !bytes.Equal(got.Tree.Marshal(), res.Tree.Marshal()) {
			t.Fatalf("member %d disagrees with committer %d", j, k)
		}
		o.priv = got.Private
	}
	m.priv = res.Private
	g.tree, g.ctx = res.Tree, *res.GroupContext
	g.ctx.Epoch++
}

func (g *testGroup) checkConsistent(t testing.TB) {
	t.Helper()
	if err := g.tree.Verify(g.ctx.GroupID); err != nil {
		t.Fatal(err)
	}
	for i, m := range g.members {
		if err := m.priv.Consistent(g.tree); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
}

func TestGroupFromScratch(t *testing.T) {
	for _, id := range suite.Supported() {
		s, err := suite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(id.String(), func(t *testing.T) {
			g := newTestGroup(t, s, 5)
			g.checkConsistent(t)
			// Every member knows the root key after the creator's commit.
			root := treemath.Root(g.tree.NumLeaves())
			for i, m := range g.members {
				if _, ok := m.priv.Key(root); !ok {
					t.Errorf("member %d lacks the root key", i)
				}
			}
			for _, k := range []int{3, 1, 4} {
				g.commit(t, k)
				g.checkConsistent(t)
			}
		})
	}
}

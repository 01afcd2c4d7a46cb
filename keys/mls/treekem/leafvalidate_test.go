package treekem

import (
	"crypto/rand"
	"testing"
	"time"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

func TestValidateLeafNode(t *testing.T) {
	s, err := suite.Lookup(suite.Mandatory)
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGroup(t, s, 3)
	nm := newTestMember(t, s, rand.Reader, "newcomer")
	now := time.Unix(1_800_000_000, 0)
	pol := LeafPolicy{Source: message.SourceKeyPackage, Now: now,
		Required: &message.RequiredCapabilities{Credentials: []message.CredentialType{message.CredentialBasic}}}
	if err := g.tree.ValidateLeafNode(&nm.kp.LeafNode, pol); err != nil {
		t.Fatalf("valid leaf: %v", err)
	}
	resign := func(f func(l *message.LeafNode)) *message.LeafNode {
		l := nm.kp.LeafNode
		l.Capabilities.Credentials = append([]message.CredentialType(nil), l.Capabilities.Credentials...)
		f(&l)
		if err := l.Sign(s, nm.signer, nil, 0); err != nil {
			t.Fatal(err)
		}
		return &l
	}
	bad := map[string]struct {
		leaf *message.LeafNode
		pol  LeafPolicy
	}{
		"wrong source": {&nm.kp.LeafNode, LeafPolicy{Source: message.SourceUpdate}},
		"bad signature": {func() *message.LeafNode {
			l := nm.kp.LeafNode
			l.Signature = append([]byte{l.Signature[0] ^ 1}, l.Signature[1:]...)
			return &l
		}(), pol},
		"missing required": {withNoop(nm.kp.LeafNode), LeafPolicy{Source: message.SourceKeyPackage, Required: &message.RequiredCapabilities{Extensions: []message.ExtensionType{message.ExtApplicationID}}}},
		"unlisted extension": {resign(func(l *message.LeafNode) {
			l.Extensions = message.Extensions{{Type: message.ExtApplicationID, Data: []byte("x")}}
		}), pol},
		"expired":       {resign(func(l *message.LeafNode) { l.Lifetime.NotAfter = 1_000 }), pol},
		"not yet valid": {resign(func(l *message.LeafNode) { l.Lifetime.NotBefore = 1 << 40 }), pol},
		"credential unknown": {resign(func(l *message.LeafNode) {
			l.Credential = message.Credential{Type: message.CredentialX509, Certificates: [][]byte{{1}}}
		}), LeafPolicy{Source: message.SourceKeyPackage}},
		"key reuse": {&g.members[1].kp.LeafNode, LeafPolicy{Source: message.SourceKeyPackage}},
	}
	for name, tc := range bad {
		if err := g.tree.ValidateLeafNode(tc.leaf, tc.pol); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Replacing one's own leaf may keep the signature key.
	upd := *g.tree.Leaf(2)
	_, pub, err := s.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	upd.EncryptionKey, upd.Source = pub, message.SourceUpdate
	if err := upd.Sign(s, g.members[2].signer, g.ctx.GroupID, 2); err != nil {
		t.Fatal(err)
	}
	upol := LeafPolicy{Source: message.SourceUpdate, GroupID: g.ctx.GroupID, Leaf: 2}
	if err := g.tree.ValidateLeafNode(&upd, upol); err != nil {
		t.Errorf("update leaf: %v", err)
	}
	if l, ok := g.tree.IndexOf(g.tree.Leaf(2)); !ok || l != 2 {
		t.Errorf("IndexOf = %d, %v", l, ok)
	}
	if _, ok := g.tree.IndexOf(&nm.kp.LeafNode); ok {
		t.Error("IndexOf found a non-member")
	}
}

func withNoop(l message.LeafNode) *message.LeafNode { return &l }

func TestPrivateTreePrunedAfterRemove(t *testing.T) {
	s, err := suite.Lookup(suite.Mandatory)
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGroup(t, s, 4)
	tree := g.tree.Clone()
	if err := tree.RemoveLeaf(1); err != nil {
		t.Fatal(err)
	}
	p := g.members[0].priv
	if err := p.Consistent(tree); err == nil {
		t.Fatal("keys of blanked nodes still consistent")
	}
	if err := p.Pruned(tree).Consistent(tree); err != nil {
		t.Error(err)
	}
	if p.Pruned(tree).Nodes() >= p.Nodes() {
		t.Error("nothing pruned")
	}
	priv, _, err := s.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := p.WithLeafKey(priv).Key(0); string(k) != string(priv) {
		t.Error("WithLeafKey did not set the leaf key")
	}
	if k, _ := p.Key(0); string(k) == string(priv) {
		t.Error("WithLeafKey changed the original")
	}
}

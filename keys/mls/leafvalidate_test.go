package mls

import (
	"crypto/rand"
	"testing"
	"time"

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
	pol := LeafPolicy{Source: SourceKeyPackage, Now: now,
		Required: &RequiredCapabilities{Credentials: []CredentialType{CredentialBasic}}}
	if err := g.tree.ValidateLeafNode(&nm.kp.LeafNode, pol); err != nil {
		t.Fatalf("valid leaf: %v", err)
	}
	resign := func(f func(l *LeafNode)) *LeafNode {
		l := nm.kp.LeafNode
		l.Capabilities.Credentials = append([]CredentialType(nil), l.Capabilities.Credentials...)
		f(&l)
		if err := l.Sign(s, nm.signer, nil, 0); err != nil {
			t.Fatal(err)
		}
		return &l
	}
	bad := map[string]struct {
		leaf *LeafNode
		pol  LeafPolicy
	}{
		"wrong source":       {&nm.kp.LeafNode, LeafPolicy{Source: SourceUpdate}},
		"bad signature":      {func() *LeafNode { l := nm.kp.LeafNode; l.Signature = append([]byte{1}, l.Signature[1:]...); return &l }(), pol},
		"missing required":   {nm.kp.LeafNode.withNoop(), LeafPolicy{Source: SourceKeyPackage, Required: &RequiredCapabilities{Extensions: []ExtensionType{ExtApplicationID}}}},
		"unlisted extension": {resign(func(l *LeafNode) { l.Extensions = Extensions{{Type: ExtApplicationID, Data: []byte("x")}} }), pol},
		"expired":            {resign(func(l *LeafNode) { l.Lifetime.NotAfter = 1_000 }), pol},
		"not yet valid":      {resign(func(l *LeafNode) { l.Lifetime.NotBefore = 1 << 40 }), pol},
		"credential unknown": {resign(func(l *LeafNode) { l.Credential = Credential{Type: CredentialX509, Certificates: [][]byte{{1}}} }), LeafPolicy{Source: SourceKeyPackage}},
		"key reuse":          {&g.members[1].kp.LeafNode, LeafPolicy{Source: SourceKeyPackage}},
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
	upd.EncryptionKey, upd.Source = pub, SourceUpdate
	if err := upd.Sign(s, g.members[2].signer, g.ctx.GroupID, 2); err != nil {
		t.Fatal(err)
	}
	upol := LeafPolicy{Source: SourceUpdate, GroupID: g.ctx.GroupID, Leaf: 2}
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

func (l LeafNode) withNoop() *LeafNode { return &l }

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

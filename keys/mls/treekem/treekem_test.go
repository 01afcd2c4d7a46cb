package treekem

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

type treeKEMVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

func TestTreeKEMVectors(t *testing.T) {
	var vs []treeKEMVector
	loadVectors(t, "treekem.json", &vs)
	c := newTally("treekem.json")
	for i, v := range vs {
		c.SuiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			runTreeKEMVector(t, s, &v)
		})
	}
	c.Report(t)
}

func runTreeKEMVector(t *testing.T, s *suite.Suite, v *treeKEMVector) {
	tree, err := UnmarshalRatchetTree(s, v.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.VerifyParentHashes(); err != nil {
		t.Fatal(err)
	}
	ctx := message.GroupContext{Version: message.MLS10, CipherSuite: s.ID(), GroupID: v.GroupID, Epoch: v.Epoch,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash}
	privs := map[treemath.LeafIndex]*PrivateTree{}
	signers := map[treemath.LeafIndex]*suite.Signer{}
	for _, lp := range v.LeavesPrivate {
		l := treemath.LeafIndex(lp.Index)
		p := NewPrivateTree(l, suite.HPKEPrivateKey(lp.EncryptionPriv))
		for _, ps := range lp.PathSecrets {
			if p, err = p.WithPathSecret(tree, treemath.NodeIndex(ps.Node), ps.PathSecret); err != nil {
				t.Fatalf("leaf %d: %v", l, err)
			}
		}
		if err := p.Consistent(tree); err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
		privs[l] = p
		if signers[l], err = s.NewSigner(lp.SignaturePriv); err != nil {
			t.Fatal(err)
		}
	}
	for _, up := range v.UpdatePaths {
		sender := treemath.LeafIndex(up.Sender)
		var path message.UpdatePath
		if err := path.Unmarshal(up.UpdatePath); err != nil {
			t.Fatal(err)
		}
		// The public half alone (what the hub runs) reaches the same tree.
		pub, err := tree.VerifyUpdatePath(sender, &path, ctx, nil)
		if err != nil {
			t.Fatalf("sender %d: public path: %v", sender, err)
		}
		if got := pub.Tree.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) || !bytes.Equal(pub.GroupContext.TreeHash, got) {
			t.Errorf("sender %d: public tree hash after = %x, want %x", sender, got, up.TreeHashAfter)
		}
		var after []byte
		for j, priv := range privs {
			if j == sender {
				continue
			}
			res, err := tree.ProcessUpdatePath(priv, sender, &path, ctx, nil)
			if err != nil {
				t.Fatalf("leaf %d processing path of %d: %v", j, sender, err)
			}
			anc := treemath.CommonAncestor(j.NodeIndex(), sender.NodeIndex())
			if !bytes.Equal(res.PathSecrets[anc], up.PathSecrets[j]) {
				t.Errorf("leaf %d, sender %d: path secret differs", j, sender)
			}
			if !bytes.Equal(res.CommitSecret, up.CommitSecret) {
				t.Errorf("leaf %d, sender %d: commit secret differs", j, sender)
			}
			if err := res.Private.Consistent(res.Tree); err != nil {
				t.Errorf("leaf %d: %v", j, err)
			}
			if got := res.Tree.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) {
				t.Errorf("sender %d: tree hash after = %x, want %x", sender, got, up.TreeHashAfter)
			}
			if err := res.Tree.VerifyParentHashes(); err != nil {
				t.Errorf("sender %d: merged tree: %v", sender, err)
			}
			after = res.Tree.Marshal()
		}
		if after == nil {
			t.Fatalf("sender %d: no receiver", sender)
		}
		checkNewUpdatePath(t, tree, privs, signers[sender], sender, ctx)
	}
}

// checkNewUpdatePath creates a fresh UpdatePath from sender and checks
// that every other member reaches the committer's commit secret and tree.
func checkNewUpdatePath(t *testing.T, tree *RatchetTree, privs map[treemath.LeafIndex]*PrivateTree,
	signer *suite.Signer, sender treemath.LeafIndex, ctx message.GroupContext) {
	t.Helper()
	gen, err := tree.GenerateUpdatePath(rand.Reader, sender, *tree.Leaf(sender), signer, ctx, nil)
	if err != nil {
		t.Fatalf("generate from %d: %v", sender, err)
	}
	if err := gen.Tree.VerifyParentHashes(); err != nil {
		t.Errorf("generated tree: %v", err)
	}
	if err := gen.Private.Consistent(gen.Tree); err != nil {
		t.Errorf("generated private state: %v", err)
	}
	var path message.UpdatePath // go through the wire encoding
	if err := path.Unmarshal(gen.Path.Marshal()); err != nil {
		t.Fatal(err)
	}
	for j, priv := range privs {
		if j == sender {
			continue
		}
		res, err := tree.ProcessUpdatePath(priv, sender, &path, ctx, nil)
		if err != nil {
			t.Fatalf("leaf %d processing new path of %d: %v", j, sender, err)
		}
		if !bytes.Equal(res.CommitSecret, gen.CommitSecret) {
			t.Errorf("leaf %d: new commit secret differs", j)
		}
		if !bytes.Equal(res.Tree.Marshal(), gen.Tree.Marshal()) {
			t.Errorf("leaf %d: merged tree differs from committer's", j)
		}
	}
}

func TestProcessUpdatePathRejects(t *testing.T) {
	s, err := suite.Lookup(suite.Mandatory)
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGroup(t, s, 6)
	g.commit(t, 2)
	res, err := g.tree.GenerateUpdatePath(rand.Reader, 1, *g.tree.Leaf(1), g.members[1].signer, g.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	recv := g.members[4].priv
	treeBefore := g.tree.Marshal()
	keysBefore := recv.Nodes()
	mutate := func(f func(p *message.UpdatePath)) *message.UpdatePath {
		var p message.UpdatePath
		if err := p.Unmarshal(res.Path.Marshal()); err != nil {
			t.Fatal(err)
		}
		f(&p)
		return &p
	}
	flip := func(b []byte) { b[len(b)-1] ^= 1 }
	cases := map[string]struct {
		path   *message.UpdatePath
		sender treemath.LeafIndex
		priv   *PrivateTree
		ctx    message.GroupContext
	}{
		"own path":       {res.Path, 1, g.members[1].priv, g.ctx},
		"blank sender":   {res.Path, 7, recv, g.ctx},
		"missing node":   {mutate(func(p *message.UpdatePath) { p.Nodes = p.Nodes[1:] }), 1, recv, g.ctx},
		"node key":       {mutate(func(p *message.UpdatePath) { p.Nodes[len(p.Nodes)-1].EncryptionKey = res.Tree.EncryptionKey(0) }), 1, recv, g.ctx},
		"parent hash":    {mutate(func(p *message.UpdatePath) { flip(p.LeafNode.ParentHash) }), 1, recv, g.ctx},
		"leaf signature": {mutate(func(p *message.UpdatePath) { flip(p.LeafNode.Signature) }), 1, recv, g.ctx},
		"leaf source":    {mutate(func(p *message.UpdatePath) { p.LeafNode.Source = message.SourceUpdate }), 1, recv, g.ctx},
		"ciphertext":     {mutate(func(p *message.UpdatePath) { flipAll(p, flip) }), 1, recv, g.ctx},
		"extra ciphertext": {mutate(func(p *message.UpdatePath) {
			for i := range p.Nodes {
				p.Nodes[i].EncryptedPathSecret = append(p.Nodes[i].EncryptedPathSecret, p.Nodes[i].EncryptedPathSecret[0])
			}
		}), 1, recv, g.ctx},
		"other context": {res.Path, 1, recv, func() message.GroupContext { c := g.ctx; c.Epoch++; return c }()},
	}
	for name, tc := range cases {
		if _, err := g.tree.ProcessUpdatePath(tc.priv, tc.sender, tc.path, tc.ctx, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if !bytes.Equal(g.tree.Marshal(), treeBefore) || recv.Nodes() != keysBefore {
		t.Error("a rejected UpdatePath changed the tree or private state")
	}
	if _, err := g.tree.ProcessUpdatePath(recv, 1, res.Path, g.ctx, nil); err != nil {
		t.Errorf("untampered path: %v", err)
	}
}

func flipAll(p *message.UpdatePath, flip func([]byte)) {
	for i := range p.Nodes {
		for j := range p.Nodes[i].EncryptedPathSecret {
			flip(p.Nodes[i].EncryptedPathSecret[j].Ciphertext)
		}
	}
}

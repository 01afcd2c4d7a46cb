package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"hearth/keys/mls/suite"
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
		c.suiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			runTreeKEMVector(t, s, &v)
		})
	}
	c.report(t)
}

func runTreeKEMVector(t *testing.T, s *suite.Suite, v *treeKEMVector) {
	tree, err := UnmarshalRatchetTree(s, v.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.VerifyParentHashes(); err != nil {
		t.Fatal(err)
	}
	ctx := GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: v.GroupID, Epoch: v.Epoch,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash}
	privs := map[LeafIndex]*PrivateTree{}
	signers := map[LeafIndex]*suite.Signer{}
	for _, lp := range v.LeavesPrivate {
		l := LeafIndex(lp.Index)
		p := NewPrivateTree(l, suite.HPKEPrivateKey(lp.EncryptionPriv))
		for _, ps := range lp.PathSecrets {
			if p, err = p.WithPathSecret(tree, NodeIndex(ps.Node), ps.PathSecret); err != nil {
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
		sender := LeafIndex(up.Sender)
		var path UpdatePath
		if err := path.Unmarshal(up.UpdatePath); err != nil {
			t.Fatal(err)
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
			anc := CommonAncestor(j.NodeIndex(), sender.NodeIndex())
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
func checkNewUpdatePath(t *testing.T, tree *RatchetTree, privs map[LeafIndex]*PrivateTree,
	signer *suite.Signer, sender LeafIndex, ctx GroupContext) {
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
	var path UpdatePath // go through the wire encoding
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

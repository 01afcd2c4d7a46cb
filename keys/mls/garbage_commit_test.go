package mls

import (
	"bytes"
	"crypto/rand"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// TestGarbagePathCommitHealsByRejoin: a member signs a path commit whose
// encrypted path secrets are garbage of the right size, and a GroupInfo
// for it whose external key nobody holds. The hub (PublicGroup) accepts
// both: checking a path ciphertext needs the recipient's private key,
// and the external key's private part comes from the epoch secret (the
// limits in docs/e2ee.md). The other members cannot process the commit.
// Rejoining by external commit from the hub's GroupInfo (what a client's
// heal does, decision 0006) still works: the joiner derives the init
// secret from its own KEM encapsulation, so the first rejoin makes an
// honest epoch, the others rejoin from its GroupInfo, and every member,
// the committer included, ends in the same group, talking again.
func TestGarbagePathCommitHealsByRejoin(t *testing.T) {
	s, err := suite.Lookup(suite.Default)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, carol := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1"), newDevice(t, s, "carol@c/1")
	all := []*device{alice, bob, carol}
	if alice.g, err = NewGroup(testConfig(), s, []byte("garbage"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	h := newTestHub(t, alice.g, PublicOptions{Validator: handshake.AcceptAll{}})
	var kps []*message.KeyPackage
	var privs []*message.KeyPackagePrivate
	for _, d := range all[1:] {
		kp, priv := d.keyPackage(t, s)
		kps, privs = append(kps, kp), append(privs, priv)
	}
	h.step(t, alice, CommitOptions{Add: kps}, all, all[1:], privs)
	before := h.pg.Epoch()

	// alice's path commit with every path secret ciphertext replaced by
	// random bytes of the same size, signed again with her key.
	out, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.DiscardPendingCommit()
	garbage := resign(t, h.pg, out.Commit, alice.signer, func(c *message.FramedContent) {
		p := *c.Commit.Path
		p.Nodes = append([]message.UpdatePathNode(nil), p.Nodes...)
		for i := range p.Nodes {
			cts := append([]message.HPKECiphertext(nil), p.Nodes[i].EncryptedPathSecret...)
			for j := range cts {
				junk := make([]byte, len(cts[j].Ciphertext))
				rand.Read(junk)
				cts[j].Ciphertext = junk
			}
			p.Nodes[i].EncryptedPathSecret = cts
		}
		c.Commit = &message.Commit{Proposals: c.Commit.Proposals, Path: &p}
	})
	h.commit(t, garbage) // the hub cannot tell
	for _, d := range []*device{bob, carol} {
		if _, err := d.g.Process(garbage); err == nil {
			t.Fatalf("%s processed a commit with garbage path secrets", d.id)
		}
		if d.g.Epoch() != before {
			t.Fatalf("%s moved to epoch %d on a refused commit", d.id, d.g.Epoch())
		}
	}

	// The GroupInfo alice gives the hub for it: right context, tree and
	// tag, signed by her, with an external key nobody holds.
	var m message.MLSMessage
	if err := m.Unmarshal(garbage); err != nil {
		t.Fatal(err)
	}
	_, junkPub, err := s.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	gi := &message.GroupInfo{GroupContext: h.pg.GroupContext(), ConfirmationTag: m.PublicMessage.Auth.ConfirmationTag, Signer: alice.g.OwnLeaf(),
		Extensions: message.Extensions{
			{Type: message.ExtRatchetTree, Data: h.pg.RatchetTree()},
			{Type: message.ExtExternalPub, Data: (&message.ExternalPub{PublicKey: junkPub}).Marshal()},
		}}
	if err := gi.Sign(s, alice.signer); err != nil {
		t.Fatal(err)
	}
	hubGI := (&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: gi}).Marshal()
	if err := h.pg.VerifyGroupInfo(hubGI); err != nil {
		t.Fatalf("the hub refuses the committer's GroupInfo: %v", err)
	}

	// Healing: each member rejoins (replacing its own leaf) from the
	// hub's latest GroupInfo; the members already back process the rejoin.
	back := []*device{}
	for _, d := range []*device{bob, carol, alice} {
		g, ext, err := JoinExternal(testConfig(), hubGI, d.signer, message.BasicCredential(d.id), ExternalJoinOptions{Resync: true})
		if err != nil {
			t.Fatalf("%s rejoin: %v", d.id, err)
		}
		h.commit(t, ext)
		for _, o := range back {
			if _, err := o.g.Process(ext); err != nil {
				t.Fatalf("%s processing %s's rejoin: %v", o.id, d.id, err)
			}
		}
		d.g = g
		back = append(back, d)
		hubGI = mustGroupInfo(t, d.g)
		if err := h.pg.VerifyGroupInfo(hubGI); err != nil {
			t.Fatalf("%s's GroupInfo after its rejoin: %v", d.id, err)
		}
	}
	h.checkTracks(t, all)
	for _, from := range all {
		ct, err := from.g.Encrypt([]byte("back from "+from.id), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range all {
			if to == from {
				continue
			}
			res, err := to.g.Process(ct)
			if err != nil || !bytes.Equal(res.Plaintext, []byte("back from "+from.id)) {
				t.Fatalf("%s reading %s after healing: %v", to.id, from.id, err)
			}
		}
	}
}

package mls

import (
	"bytes"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// publicFuzz is a hub's state for three members with one cached proposal,
// the members' signers (to sign mutated content again), and real messages
// of the epoch to seed the corpus.
type publicFuzz struct {
	pg      *PublicGroup
	state   []byte
	signers map[string]*suite.Signer // by signature public key
	seeds   [][]byte
}

func newPublicFuzz(f *testing.F) *publicFuzz {
	s, _ := suite.Lookup(1)
	alice, bob, carol, erin := newDevice(f, s, "alice@a/1"), newDevice(f, s, "bob@b/1"), newDevice(f, s, "carol@c/1"), newDevice(f, s, "erin@e/1")
	all := []*device{alice, bob, carol}
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("fuzz"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		f.Fatal(err)
	}
	h := newTestHub(f, alice.g, PublicOptions{Validator: handshake.AcceptAll{}})
	kpB, privB := bob.keyPackage(f, s)
	kpC, privC := carol.keyPackage(f, s)
	h.step(f, alice, CommitOptions{Add: []*message.KeyPackage{kpB, kpC}}, all, []*device{bob, carol}, []*message.KeyPackagePrivate{privB, privC})
	prop, err := carol.g.ProposeUpdate()
	if err != nil {
		f.Fatal(err)
	}
	h.broadcast(f, carol, prop, all)
	pf := &publicFuzz{pg: h.pg, state: h.pg.Marshal(), signers: map[string]*suite.Signer{}}
	for _, d := range []*device{alice, bob, carol, erin} {
		pf.signers[string(d.signer.Public())] = d.signer
	}
	kpE, _ := erin.keyPackage(f, s)
	add, err := bob.g.Commit(CommitOptions{Add: []*message.KeyPackage{kpE}})
	if err != nil {
		f.Fatal(err)
	}
	bob.g.DiscardPendingCommit()
	path, err := alice.g.Commit(CommitOptions{Remove: []treemath.LeafIndex{1}})
	if err != nil {
		f.Fatal(err)
	}
	_, ext, err := JoinExternal(testConfig(), mustGroupInfo(f, alice.g), erin.signer, message.BasicCredential(erin.id), ExternalJoinOptions{})
	if err != nil {
		f.Fatal(err)
	}
	rm, err := bob.g.ProposeRemove(2)
	if err != nil {
		f.Fatal(err)
	}
	pf.seeds = [][]byte{add.Commit, path.Commit, ext, rm, prop, path.GroupInfo}
	return pf
}

// resign signs a PublicMessage's (mutated) content again with the key of
// its sender, so mutations reach the checks behind the signature.
func (pf *publicFuzz) resign(msg []byte) []byte {
	var m message.MLSMessage
	if m.Unmarshal(msg) != nil || m.PublicMessage == nil {
		return msg
	}
	c := &m.PublicMessage.Content
	var key []byte
	switch {
	case c.Sender.Type == message.SenderMember && pf.pg.tree.Leaf(treemath.LeafIndex(c.Sender.Index)) != nil:
		key = pf.pg.tree.Leaf(treemath.LeafIndex(c.Sender.Index)).SignatureKey
	case c.Sender.Type == message.SenderNewMemberCommit && c.ContentType == message.ContentCommit && c.Commit.Path != nil:
		key = c.Commit.Path.LeafNode.SignatureKey
	}
	signer, ok := pf.signers[string(key)]
	if !ok {
		return msg
	}
	ac, err := message.SignContent(pf.pg.s, signer, message.WirePublicMessage, c, &pf.pg.ctx)
	if err != nil {
		return msg
	}
	m.PublicMessage.Auth.Signature = ac.Auth.Signature
	return m.Marshal()
}

// FuzzPublicGroupApply feeds arbitrary bytes, and mutated real commits and
// proposals signed again by their sender, to Apply and AddProposal: no
// panic, a refusal returns no state and leaves the state byte for byte
// unchanged, an accepted commit moves to the next epoch and its state
// survives Marshal/Unmarshal.
func FuzzPublicGroupApply(f *testing.F) {
	pf := newPublicFuzz(f)
	for _, s := range pf.seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Add([]byte{0, 1, 0, 1}, false)
	opts := PublicOptions{Validator: handshake.AcceptAll{}}
	f.Fuzz(func(t *testing.T, msg []byte, resign bool) {
		pg, err := UnmarshalPublicGroup(pf.state)
		if err != nil {
			t.Fatal(err)
		}
		if resign {
			msg = pf.resign(msg)
		}
		next, ch, err := pg.Apply(msg, opts)
		switch {
		case err != nil && (next != nil || ch != nil):
			t.Fatal("refused commit returned a state")
		case err == nil && (next.Epoch() != pg.Epoch()+1 || ch.Epoch != next.Epoch()):
			t.Fatalf("accepted commit moved to epoch %d", next.Epoch())
		case err == nil:
			b := next.Marshal()
			back, err := UnmarshalPublicGroup(b)
			if err != nil || !bytes.Equal(back.Marshal(), b) {
				t.Fatalf("next state does not round-trip: %v", err)
			}
		}
		pnext, info, perr := pg.AddProposal(msg, opts)
		switch {
		case perr != nil && (pnext != nil || info != nil):
			t.Fatal("refused proposal returned a state")
		case perr == nil && len(pnext.Proposals()) != len(pg.Proposals())+1:
			t.Fatal("accepted proposal not cached")
		}
		if !bytes.Equal(pg.Marshal(), pf.state) {
			t.Fatalf("Apply/AddProposal changed the state (%v, %v)", err, perr)
		}
	})
}

// FuzzUnmarshalPublicGroup: damaged saved state is refused without
// panic; accepted state re-encodes to the same bytes.
func FuzzUnmarshalPublicGroup(f *testing.F) {
	pf := newPublicFuzz(f)
	f.Add(pf.state)
	f.Add(pf.state[:len(pf.state)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		pg, err := UnmarshalPublicGroup(b)
		if err != nil {
			return
		}
		if !bytes.Equal(pg.Marshal(), b) {
			t.Fatal("state re-encodes differently")
		}
	})
}

package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// signCommit frames commit as a PublicMessage of sender in pg's epoch,
// signed by signer, with filler membership and confirmation tags: what a
// member (or anyone with a signature key) can forge without secrets.
func signCommit(t testing.TB, pg *PublicGroup, signer *suite.Signer, sender message.Sender, commit *message.Commit) []byte {
	t.Helper()
	c := &message.FramedContent{GroupID: pg.ctx.GroupID, Epoch: pg.ctx.Epoch, Sender: sender, AuthenticatedData: []byte{},
		ContentType: message.ContentCommit, Commit: commit}
	return signContent(t, pg, signer, c, make([]byte, pg.s.Nh()))
}

func signContent(t testing.TB, pg *PublicGroup, signer *suite.Signer, c *message.FramedContent, tag []byte) []byte {
	t.Helper()
	ac, err := message.SignContent(pg.s, signer, message.WirePublicMessage, c, &pg.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = tag
	pm, err := message.NewPublicMessage(pg.s, ac, make([]byte, pg.s.Nh()), &pg.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return (&message.MLSMessage{WireFormat: message.WirePublicMessage, PublicMessage: pm}).Marshal()
}

// resign decodes a real handshake message, lets mutate change its
// content, and signs it again with signer (a malicious sender holds its
// own key), keeping its confirmation tag.
func resign(t testing.TB, pg *PublicGroup, msg []byte, signer *suite.Signer, mutate func(*message.FramedContent)) []byte {
	t.Helper()
	var m message.MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		t.Fatal(err)
	}
	c := m.PublicMessage.Content
	mutate(&c)
	tag := m.PublicMessage.Auth.ConfirmationTag
	if c.ContentType != message.ContentCommit {
		tag = nil
	}
	return signContent(t, pg, signer, &c, tag)
}

// refuser refuses one identity.
type refuser string

func (r refuser) ValidateMember(identity, _ []byte) error {
	if string(identity) == string(r) {
		return fmt.Errorf("%s is not on its user's device list", r)
	}
	return nil
}

// refusalGroup is a hub following alice (leaf 0), bob (1) and carol (2),
// after alice added dave (3) and removed him again.
type refusalGroup struct {
	s                       *suite.Suite
	h                       *testHub
	alice, bob, carol, dave *device
	all                     []*device
	firstCommit, daveStale  []byte // already applied; dave's commit from his last epoch
	daveLeaf                treemath.LeafIndex
}

func newRefusalGroup(t *testing.T, s *suite.Suite) *refusalGroup {
	r := &refusalGroup{s: s, alice: newDevice(t, s, "alice@a/1"), bob: newDevice(t, s, "bob@b/1"),
		carol: newDevice(t, s, "carol@c/1"), dave: newDevice(t, s, "dave@d/1")}
	r.all = []*device{r.alice, r.bob, r.carol, r.dave}
	var err error
	if r.alice.g, err = NewGroup(testConfig(), s, []byte("refusals"), r.alice.signer, message.BasicCredential(r.alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	r.h = newTestHub(t, r.alice.g, PublicOptions{Validator: handshake.AcceptAll{}})
	var kps []*message.KeyPackage
	var privs []*message.KeyPackagePrivate
	for _, d := range r.all[1:] {
		kp, priv := d.keyPackage(t, s)
		kps, privs = append(kps, kp), append(privs, priv)
	}
	_, out := r.h.step(t, r.alice, CommitOptions{Add: kps}, r.all, r.all[1:], privs)
	r.firstCommit = out.Commit
	r.daveLeaf = r.dave.g.OwnLeaf()
	stale, err := r.dave.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	r.daveStale = stale.Commit
	r.dave.g.DiscardPendingCommit()
	r.h.step(t, r.alice, CommitOptions{Remove: []treemath.LeafIndex{r.daveLeaf}}, r.all, nil, nil)
	return r
}

// TestPublicGroupRefuses: every forged or invalid commit is refused with
// an error of the right kind, and the hub's state is unchanged (the valid
// commit still applies afterwards).
func TestPublicGroupRefuses(t *testing.T) {
	for _, id := range []suite.ID{suite.ID(1), suite.Default} {
		s, err := suite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(id.String(), func(t *testing.T) { publicRefuses(t, s) })
	}
}

func publicRefuses(t *testing.T, s *suite.Suite) {
	r := newRefusalGroup(t, s)
	h, alice, bob := r.h, r.alice, r.bob
	pg := h.pg
	me := message.Sender{Type: message.SenderMember, Index: 0}

	// A real path commit by alice to mutate; discarded afterwards.
	out, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.DiscardPendingCommit()
	real := out.Commit

	// An external join to mutate.
	erin := newDevice(t, s, "erin@e/1")
	_, extCommit, err := JoinExternal(testConfig(), mustGroupInfo(t, alice.g), erin.signer, message.BasicCredential(erin.id), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}

	other, err := NewGroup(testConfig(), s, []byte("another group"), alice.signer, message.BasicCredential(alice.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	otherOut, err := other.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	app, err := alice.g.Encrypt([]byte("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	prop, err := bob.g.ProposeRemove(2)
	if err != nil {
		t.Fatal(err)
	}

	fred := newDevice(t, s, "fred@f/1")
	kpF, _ := fred.keyPackage(t, s)
	badKP := *kpF
	badKP.Signature = bytes.Clone(kpF.Signature)
	badKP.Signature[0] ^= 1
	kpBob2, _ := newDevice(t, s, bob.id).keyPackage(t, s) // a second leaf for bob
	mallory := newDevice(t, s, "mallory@m/1")
	kpM, _ := mallory.keyPackage(t, s)
	_, otherPub, err := s.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nh := make([]byte, s.Nh())
	add := func(kp *message.KeyPackage) message.ProposalOrRef {
		return message.ProposalOrRef{Proposal: &message.Proposal{Type: message.ProposalAdd, Add: kp}}
	}
	remove := func(l treemath.LeafIndex) message.ProposalOrRef {
		return message.ProposalOrRef{Proposal: &message.Proposal{Type: message.ProposalRemove, Remove: l}}
	}
	mutatePath := func(f func(p *message.UpdatePath)) []byte {
		return resign(t, pg, real, alice.signer, func(c *message.FramedContent) {
			p := *c.Commit.Path
			p.Nodes = append([]message.UpdatePathNode(nil), p.Nodes...)
			f(&p)
			c.Commit = &message.Commit{Proposals: c.Commit.Proposals, Path: &p}
		})
	}
	mutateExt := func(f func(c *message.Commit)) []byte {
		return resign(t, pg, extCommit, erin.signer, func(c *message.FramedContent) {
			cc := *c.Commit
			f(&cc)
			c.Commit = &cc
		})
	}
	shortTag := func() []byte {
		var m message.MLSMessage
		if err := m.Unmarshal(real); err != nil {
			t.Fatal(err)
		}
		m.PublicMessage.Auth.ConfirmationTag = []byte{1, 2, 3}
		return m.Marshal()
	}

	cases := []struct {
		name string
		msg  []byte
		opts *PublicOptions
		want error
	}{
		{"not MLS", []byte("add mallory@m/1 please"), nil, message.ErrMalformed},
		{"empty", nil, nil, message.ErrMalformed},
		{"application message", app, nil, message.ErrMalformed},
		{"proposal given as commit", prop, nil, message.ErrMalformed},
		{"KeyPackage", kpF.Message(), nil, message.ErrMalformed},
		{"other group", otherOut.Commit, nil, handshake.ErrGroup},
		{"replayed commit of an earlier epoch", r.firstCommit, nil, handshake.ErrEpoch},
		{"future epoch", resign(t, pg, real, alice.signer, func(c *message.FramedContent) { c.Epoch++ }), nil, handshake.ErrEpoch},
		{"bad signature", func() []byte {
			var m message.MLSMessage
			m.Unmarshal(real)
			m.PublicMessage.Auth.Signature[3] ^= 1
			return m.Marshal()
		}(), nil, message.ErrAuth},
		{"other content under alice's signature", resign(t, pg, real, bob.signer, func(*message.FramedContent) {}), nil, message.ErrAuth},
		{"sender not a member", signCommit(t, pg, alice.signer, message.Sender{Type: message.SenderMember, Index: 7},
			&message.Commit{Proposals: []message.ProposalOrRef{add(kpF)}}), nil, handshake.ErrSender},
		{"external sender", signCommit(t, pg, alice.signer, message.Sender{Type: message.SenderExternal, Index: 0},
			&message.Commit{Proposals: []message.ProposalOrRef{add(kpF)}}), nil, handshake.ErrSender},
		{"removed member", signCommit(t, pg, r.dave.signer, message.Sender{Type: message.SenderMember, Index: uint32(r.daveLeaf)},
			&message.Commit{Proposals: []message.ProposalOrRef{add(kpF)}}), nil, handshake.ErrSender},
		{"removed member's stale commit", r.daveStale, nil, handshake.ErrEpoch},
		{"short confirmation tag", shortTag(), nil, message.ErrMalformed},
		{"Add with a bad KeyPackage signature", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{add(&badKP)}}), nil, handshake.ErrProposal},
		{"duplicate Add", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{add(kpF), add(kpF)}}), nil, handshake.ErrProposal},
		{"Add of a member", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{add(kpBob2)}}), nil, handshake.ErrProposal},
		{"Remove of a blank leaf", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{remove(r.daveLeaf)}}), nil, handshake.ErrProposal},
		{"Remove of an absent leaf", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{remove(40)}}), nil, handshake.ErrProposal},
		{"duplicate Remove", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{remove(1), remove(1)}}), nil, handshake.ErrProposal},
		{"committer removes itself", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{remove(0)}}), nil, handshake.ErrProposal},
		{"Remove without a path", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{remove(1)}}), nil, handshake.ErrProposal},
		{"empty commit without a path", signCommit(t, pg, alice.signer, me, &message.Commit{}), nil, handshake.ErrProposal},
		{"unknown reference", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{{Reference: nh}}}), nil, handshake.ErrProposal},
		{"Update by value", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{{Proposal: &message.Proposal{Type: message.ProposalUpdate, Update: pg.tree.Leaf(1)}}}}), nil, handshake.ErrProposal},
		{"ExternalInit in a member's commit", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{{Proposal: &message.Proposal{Type: message.ProposalExternalInit, ExternalInitKEMOutput: nh}}}}), nil, handshake.ErrProposal},
		{"ReInit", signCommit(t, pg, alice.signer, me, &message.Commit{Proposals: []message.ProposalOrRef{{Proposal: &message.Proposal{Type: message.ProposalReInit,
			ReInit: &message.ReInit{GroupID: []byte("x"), Version: message.MLS10, CipherSuite: s.ID(), Extensions: message.Extensions{}}}}}}), nil, handshake.ErrUnsupported},
		{"extension no member supports", signCommit(t, pg, alice.signer, me, &message.Commit{Proposals: []message.ProposalOrRef{{Proposal: &message.Proposal{
			Type: message.ProposalGroupContextExtensions, GroupContextExtensions: message.Extensions{{Type: 0xF0A1, Data: []byte{1}}}}}}}), nil, handshake.ErrProposal},
		{"two GroupContextExtensions", signCommit(t, pg, alice.signer, me, &message.Commit{Proposals: []message.ProposalOrRef{
			{Proposal: &message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: message.Extensions{}}},
			{Proposal: &message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: message.Extensions{}}}}}), nil, handshake.ErrProposal},
		{"PSK with a short nonce", signCommit(t, pg, alice.signer, me, &message.Commit{Proposals: []message.ProposalOrRef{{Proposal: &message.Proposal{
			Type: message.ProposalPSK, PSK: &message.PreSharedKeyID{Type: message.PSKExternal, PSKID: []byte("k"), Nonce: []byte{1}}}}}}), nil, handshake.ErrProposal},
		{"validator refuses an added device", signCommit(t, pg, alice.signer, me,
			&message.Commit{Proposals: []message.ProposalOrRef{add(kpM)}}), &PublicOptions{Validator: refuser(mallory.id)}, handshake.ErrCredential},
		{"validator refuses the committer", real, &PublicOptions{Validator: refuser(alice.id)}, handshake.ErrCredential},
		{"forged parent hash", mutatePath(func(p *message.UpdatePath) {
			p.Nodes[0] = message.UpdatePathNode{EncryptionKey: otherPub, EncryptedPathSecret: p.Nodes[0].EncryptedPathSecret}
		}), nil, treekem.ErrTree},
		{"forged path leaf signature", mutatePath(func(p *message.UpdatePath) {
			p.LeafNode.Signature = bytes.Clone(p.LeafNode.Signature)
			p.LeafNode.Signature[0] ^= 1
		}), nil, treekem.ErrTree},
		{"path leaf with another identity", mutatePath(func(p *message.UpdatePath) {
			p.LeafNode.Credential = message.BasicCredential("mallory@m/1")
			if err := p.LeafNode.Sign(s, alice.signer, pg.ctx.GroupID, 0); err != nil {
				t.Fatal(err)
			}
		}), nil, handshake.ErrProposal},
		{"path leaf with a key package source", mutatePath(func(p *message.UpdatePath) { p.LeafNode.Source = message.SourceKeyPackage }), nil, treekem.ErrTree},
		{"path too short", mutatePath(func(p *message.UpdatePath) { p.Nodes = p.Nodes[:len(p.Nodes)-1] }), nil, treekem.ErrTree},
		{"path with a missing ciphertext", mutatePath(func(p *message.UpdatePath) {
			p.Nodes[0].EncryptedPathSecret = p.Nodes[0].EncryptedPathSecret[1:]
		}), nil, treekem.ErrTree},
		{"path ciphertext of the wrong size", mutatePath(func(p *message.UpdatePath) {
			cts := append([]message.HPKECiphertext(nil), p.Nodes[0].EncryptedPathSecret...)
			cts[0].Ciphertext = append(bytes.Clone(cts[0].Ciphertext), 0)
			p.Nodes[0].EncryptedPathSecret = cts
		}), nil, treekem.ErrTree},
		{"external commit with a short kem_output", mutateExt(func(c *message.Commit) {
			c.Proposals = []message.ProposalOrRef{{Proposal: &message.Proposal{Type: message.ProposalExternalInit, ExternalInitKEMOutput: []byte{1, 2, 3, 4, 5}}}}
		}), nil, handshake.ErrProposal},
		{"external commit removing another member", mutateExt(func(c *message.Commit) {
			c.Proposals = append(c.Proposals, remove(1))
		}), nil, handshake.ErrProposal},
		{"external commit without ExternalInit", mutateExt(func(c *message.Commit) { c.Proposals = nil }), nil, handshake.ErrProposal},
		{"external commit with an Add", mutateExt(func(c *message.Commit) { c.Proposals = append(c.Proposals, add(kpF)) }), nil, handshake.ErrProposal},
		{"external commit by a member's identity", func() []byte {
			_, c, err := JoinExternal(testConfig(), mustGroupInfo(t, alice.g), erin.signer, message.BasicCredential(bob.id), ExternalJoinOptions{Resync: true})
			if err != nil {
				t.Fatal(err)
			}
			return resign(t, pg, c, erin.signer, func(c *message.FramedContent) {
				cc := *c.Commit
				cc.Proposals = cc.Proposals[:1] // keep bob's leaf: a second leaf for bob
				c.Commit = &cc
			})
		}(), nil, handshake.ErrProposal},
		{"validator refuses the external joiner", extCommit, &PublicOptions{Validator: refuser(erin.id)}, handshake.ErrCredential},
	}
	before := pg.Marshal()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := h.opts
			if tc.opts != nil {
				opts = *tc.opts
			}
			next, ch, err := pg.Apply(tc.msg, opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want %v", err, tc.want)
			}
			if next != nil || ch != nil {
				t.Fatal("a refused commit returned a state")
			}
			if !bytes.Equal(pg.Marshal(), before) {
				t.Fatal("a refused commit changed the state")
			}
			t.Logf("%v", err)
		})
	}
	// The untouched state still takes the real commits.
	if _, _, err := pg.Apply(real, h.opts); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pg.Apply(extCommit, h.opts); err != nil {
		t.Fatal(err)
	}
}

// TestPublicGroupProposals: proposals are verified before they are
// cached, a replay is refused, and a commit cannot reference a proposal
// of an earlier epoch.
func TestPublicGroupProposals(t *testing.T) {
	s, _ := suite.Lookup(1)
	r := newRefusalGroup(t, s)
	h, bob := r.h, r.bob
	prop, err := bob.g.ProposeRemove(2)
	if err != nil {
		t.Fatal(err)
	}
	pg := h.pg
	bad := func() []byte {
		var m message.MLSMessage
		m.Unmarshal(prop)
		m.PublicMessage.Auth.Signature[0] ^= 1
		return m.Marshal()
	}()
	blank := resign(t, pg, prop, bob.signer, func(c *message.FramedContent) {
		c.Proposal = &message.Proposal{Type: message.ProposalRemove, Remove: r.daveLeaf}
	})
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"bad signature", bad, message.ErrAuth},
		{"Remove of a blank leaf", blank, handshake.ErrProposal},
		{"commit given as proposal", r.firstCommit, message.ErrMalformed},
	} {
		if _, _, err := pg.AddProposal(tc.msg, h.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if len(pg.Proposals()) != 0 {
		t.Fatal("a refused proposal was cached")
	}
	next, info, err := pg.AddProposal(prop, h.opts)
	if err != nil || info.Proposal.Type != message.ProposalRemove || len(pg.Proposals()) != 0 || len(next.Proposals()) != 1 {
		t.Fatalf("AddProposal: %v", err)
	}
	if _, _, err := next.AddProposal(prop, h.opts); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("replayed proposal: %v", err)
	}
	h.pg = next
	// A commit of the next epoch referencing it is refused.
	for _, d := range r.all {
		if d.g != nil && d.g.Active() && d != bob {
			if _, err := d.g.Process(prop); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.step(t, r.alice, CommitOptions{}, r.all, nil, nil) // commits the Remove by reference
	late := signCommit(t, h.pg, r.alice.signer, message.Sender{Type: message.SenderMember},
		&message.Commit{Proposals: []message.ProposalOrRef{{Reference: info.Ref}}})
	if _, _, err := h.pg.Apply(late, h.opts); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("reference to an earlier epoch's proposal: %v", err)
	}
}

// TestNewPublicGroupRefuses: the first GroupInfo must verify.
func TestNewPublicGroupRefuses(t *testing.T) {
	s, _ := suite.Lookup(1)
	r := newRefusalGroup(t, s)
	gi := mustGroupInfo(t, r.alice.g)
	opts := PublicOptions{Validator: handshake.AcceptAll{}}
	var m message.MLSMessage
	if err := m.Unmarshal(gi); err != nil {
		t.Fatal(err)
	}
	sig := m
	g2 := *m.GroupInfo
	g2.Signature = bytes.Clone(g2.Signature)
	g2.Signature[0] ^= 1
	sig.GroupInfo = &g2
	noTree := *m.GroupInfo
	noTree.Extensions = message.Extensions{}
	if err := noTree.Sign(s, r.alice.signer); err != nil {
		t.Fatal(err)
	}
	other := *m.GroupInfo
	other.GroupContext.TreeHash = bytes.Clone(nh(s))
	if err := other.Sign(s, r.alice.signer); err != nil {
		t.Fatal(err)
	}
	wrap := func(g *message.GroupInfo) []byte {
		return (&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: g}).Marshal()
	}
	for _, tc := range []struct {
		name string
		gi   []byte
		tree []byte
		opts PublicOptions
	}{
		{"not a GroupInfo", r.firstCommit, nil, opts},
		{"bad signature", sig.Marshal(), nil, opts},
		{"no tree", wrap(&noTree), nil, opts},
		{"tree hash differs", wrap(&other), nil, opts},
		{"validator refuses a member", gi, nil, PublicOptions{Validator: refuser(r.bob.id)}},
		{"no validator", gi, nil, PublicOptions{}},
	} {
		if _, err := NewPublicGroup(tc.gi, tc.tree, tc.opts); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// Without the extension, the tree given apart is used.
	if _, err := NewPublicGroup(wrap(&noTree), r.h.pg.RatchetTree(), opts); err != nil {
		t.Fatal(err)
	}
	if err := r.h.pg.VerifyGroupInfo(wrap(&other)); err == nil {
		t.Fatal("VerifyGroupInfo accepted another GroupContext")
	}
}

func nh(s *suite.Suite) []byte { return make([]byte, s.Nh()) }

// TestPublicGroupWrongConfirmationTag: a hub started from a GroupInfo
// whose confirmation tag is not the epoch's (the hub cannot check it)
// accepts the next commit but refuses every later one: it fails closed.
func TestPublicGroupWrongConfirmationTag(t *testing.T) {
	s, _ := suite.Lookup(1)
	r := newRefusalGroup(t, s)
	var m message.MLSMessage
	if err := m.Unmarshal(mustGroupInfo(t, r.alice.g)); err != nil {
		t.Fatal(err)
	}
	gi := *m.GroupInfo
	gi.ConfirmationTag = bytes.Repeat([]byte{7}, s.Nh())
	if err := gi.Sign(s, r.alice.signer); err != nil {
		t.Fatal(err)
	}
	opts := PublicOptions{Validator: handshake.AcceptAll{}}
	pg, err := NewPublicGroup((&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: &gi}).Marshal(), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.h.pg.VerifyGroupInfo((&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: &gi}).Marshal()); !errors.Is(err, message.ErrAuth) {
		t.Fatalf("VerifyGroupInfo with another tag: %v", err)
	}
	_, out := r.h.step(t, r.alice, CommitOptions{UpdatePath: true}, r.all, nil, nil)
	if pg, _, err = pg.Apply(out.Commit, opts); err != nil {
		t.Fatal(err)
	}
	_, out = r.h.step(t, r.bob, CommitOptions{UpdatePath: true}, r.all, nil, nil)
	if _, _, err := pg.Apply(out.Commit, opts); !errors.Is(err, message.ErrAuth) {
		t.Fatalf("later commit: %v", err)
	}
}

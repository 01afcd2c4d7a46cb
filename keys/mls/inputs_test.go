package mls

import (
	"bytes"
	"fmt"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// TestInputsNotModified: what a hub and a joiner parse (a commit, its
// GroupInfo, a Welcome) is parsed in place, so no step may write into it:
// applying the commit to the public state, verifying the GroupInfo and
// marshalling the next state (the hub), reading the GroupInfo's tree and
// joining with it (the joiner), merging the commit (the committer). Twelve
// adds, with and without a path, on the default (post-quantum) suite.
func TestInputsNotModified(t *testing.T) {
	s, _ := suite.Lookup(suite.Default)
	creator := newDevice(t, s, "carol@c.example/WMJAC2HRR2YJD7KQ")
	g, err := NewGroup(testConfig(), s, []byte("79de40946aeaf5ec1c01@c.example"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gi0, _ := g.GroupInfo()
	opts := PublicOptions{Validator: handshake.AcceptAll{}}
	pg, err := NewPublicGroup(bytes.Clone(gi0), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 12; round++ {
		d := newDevice(t, s, fmt.Sprintf("erin@b.example/DEV%012d", round))
		kp, priv := d.keyPackage(t, s)
		out, err := g.Commit(CommitOptions{Add: []*message.KeyPackage{kp}, UpdatePath: round%2 == 0, OmitTreeInWelcome: true})
		if err != nil {
			t.Fatal(err)
		}
		commit, gi, welcome := bytes.Clone(out.Commit), bytes.Clone(out.GroupInfo), bytes.Clone(out.Welcome)
		next, _, err := pg.Apply(commit, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(commit, out.Commit) {
			t.Fatalf("round %d: Apply changed its commit input", round)
		}
		if err := next.VerifyGroupInfo(gi); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gi, out.GroupInfo) {
			t.Fatalf("round %d: VerifyGroupInfo changed its input", round)
		}
		// what a hub keeps and re-marshals
		_ = next.Marshal()
		if !bytes.Equal(gi, out.GroupInfo) || !bytes.Equal(commit, out.Commit) {
			t.Fatalf("round %d: Marshal of the next state changed an input", round)
		}
		if _, err := ReadGroupInfoTree(gi); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gi, out.GroupInfo) {
			t.Fatalf("round %d: ReadGroupInfoTree changed its input", round)
		}
		_, err = JoinFromWelcome(testConfig(), welcome, kp, priv, JoinOptions{RatchetTree: groupInfoTree(t, gi)})
		if err != nil {
			t.Fatalf("round %d: join: %v", round, err)
		}
		if !bytes.Equal(gi, out.GroupInfo) || !bytes.Equal(welcome, out.Welcome) {
			t.Fatalf("round %d: join changed an input", round)
		}
		if _, err := g.ApplyPendingCommit(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gi, out.GroupInfo) {
			t.Fatalf("round %d: ApplyPendingCommit changed the GroupInfo", round)
		}
		pg = next
	}
}

// groupInfoTree returns the ratchet_tree extension of a GroupInfo, a
// slice of it.
func groupInfoTree(t *testing.T, gi []byte) []byte {
	var m message.MLSMessage
	if err := m.Unmarshal(gi); err != nil {
		t.Fatal(err)
	}
	raw, _ := m.GroupInfo.Extensions.Find(message.ExtRatchetTree)
	return raw
}

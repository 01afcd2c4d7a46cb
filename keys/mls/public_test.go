package mls

import (
	"bytes"
	"slices"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// testHub is a server following a group with a PublicGroup, as the hub
// does: every commit is verified before the members see it. Its state
// goes through Marshal and UnmarshalPublicGroup after every step.
type testHub struct {
	pg   *PublicGroup
	opts PublicOptions
}

func newTestHub(t testing.TB, creator *Group, opts PublicOptions) *testHub {
	t.Helper()
	gi, err := creator.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := NewPublicGroup(gi, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &testHub{pg: pg, opts: opts}
	h.reload(t)
	return h
}

// reload replaces the state by its saved and restored copy.
func (h *testHub) reload(t testing.TB) {
	t.Helper()
	b := h.pg.Marshal()
	pg, err := UnmarshalPublicGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pg.Marshal(), b) {
		t.Fatal("public state does not survive Marshal/Unmarshal")
	}
	h.pg = pg
}

func (h *testHub) commit(t testing.TB, msg []byte) *CommitChange {
	t.Helper()
	next, ch, err := h.pg.Apply(msg, h.opts)
	if err != nil {
		t.Fatalf("hub refuses a valid commit: %v", err)
	}
	h.pg = next
	h.reload(t)
	return ch
}

func (h *testHub) proposal(t testing.TB, msg []byte) {
	t.Helper()
	next, _, err := h.pg.AddProposal(msg, h.opts)
	if err != nil {
		t.Fatalf("hub refuses a valid proposal: %v", err)
	}
	h.pg = next
	h.reload(t)
}

// checkTracks compares the hub's state with every active member's.
func (h *testHub) checkTracks(t testing.TB, devs []*device) {
	t.Helper()
	n := 0
	for _, d := range devs {
		if d.g == nil || !d.g.Active() {
			continue
		}
		n++
		st := d.g.st
		switch {
		case h.pg.Epoch() != st.ctx.Epoch:
			t.Fatalf("%s at epoch %d, hub at %d", d.id, st.ctx.Epoch, h.pg.Epoch())
		case !bytes.Equal(h.pg.TreeHash(), st.ctx.TreeHash):
			t.Fatalf("%s: tree hash differs from the hub's", d.id)
		case !bytes.Equal(h.pg.GroupContext().ConfirmedTranscriptHash, st.ctx.ConfirmedTranscriptHash):
			t.Fatalf("%s: confirmed transcript hash differs from the hub's", d.id)
		case !bytes.Equal(h.pg.ctx.Marshal(), st.ctx.Marshal()):
			t.Fatalf("%s: GroupContext differs from the hub's", d.id)
		case !bytes.Equal(h.pg.InterimTranscriptHash(), st.interim):
			t.Fatalf("%s: interim transcript hash differs from the hub's", d.id)
		case !bytes.Equal(h.pg.RatchetTree(), st.tree.Marshal()):
			t.Fatalf("%s: ratchet tree differs from the hub's", d.id)
		}
	}
	if n == 0 {
		t.Fatal("no active member to compare with")
	}
}

// hubStep has d commit opts; the hub verifies the commit first (a
// refusal fails the test), then d applies it, the other members process
// it and the joiners join from the Welcome with the hub's tree.
func (h *testHub) step(t testing.TB, d *device, opts CommitOptions, all []*device, joiners []*device,
	privs []*message.KeyPackagePrivate) (*CommitChange, *CommitOutput) {
	t.Helper()
	opts.OmitTreeInWelcome = true
	out, err := d.g.Commit(opts)
	if err != nil {
		t.Fatalf("%s commit: %v", d.id, err)
	}
	ch := h.commit(t, out.Commit)
	if err := h.pg.VerifyGroupInfo(out.GroupInfo); err != nil {
		t.Fatalf("the commit's GroupInfo: %v", err)
	}
	if _, err := d.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		if o == d || o.g == nil || !o.g.Active() || slices.Contains(joiners, o) {
			continue
		}
		if _, err := o.g.Process(out.Commit); err != nil {
			t.Fatalf("%s processing %s's commit: %v", o.id, d.id, err)
		}
	}
	for i, j := range joiners {
		g, err := JoinFromWelcome(testConfig(), out.Welcome, opts.Add[i], privs[i], JoinOptions{RatchetTree: h.pg.RatchetTree()})
		if err != nil {
			t.Fatalf("%s join: %v", j.id, err)
		}
		j.g = g
	}
	h.checkTracks(t, all)
	return ch, out
}

// broadcast gives a proposal to the hub and to every member but its sender.
func (h *testHub) broadcast(t testing.TB, from *device, msg []byte, all []*device) {
	t.Helper()
	h.proposal(t, msg)
	for _, o := range all {
		if o == from || o.g == nil || !o.g.Active() {
			continue
		}
		if _, err := o.g.Process(msg); err != nil {
			t.Fatalf("%s processing %s's proposal: %v", o.id, from.id, err)
		}
	}
}

func ids(ms []handshake.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Identity))
	}
	return out
}

func wantIDs(t testing.TB, what string, got []handshake.Member, want ...string) {
	t.Helper()
	if g := ids(got); !slices.Equal(g, want) {
		t.Fatalf("%s = %q, want %q", what, g, want)
	}
}

// TestPublicGroupTracksMembers: a hub fed every commit (by value, by
// reference, path-less and with a path, external joins, PSKs, new
// extensions) stays exactly in step with the members: epoch, tree,
// GroupContext, transcript hashes; the change it derives is the roster
// change the members see.
func TestPublicGroupTracksMembers(t *testing.T) {
	for _, id := range []suite.ID{suite.ID(1), suite.Default} {
		s, err := suite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(id.String(), func(t *testing.T) { publicTracks(t, s) })
	}
}

func publicTracks(t *testing.T, s *suite.Suite) {
	alice, bob, carol, dave, erin := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1"),
		newDevice(t, s, "carol@c/1"), newDevice(t, s, "dave@d/1"), newDevice(t, s, "erin@e/1")
	all := []*device{alice, bob, carol, dave, erin}
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("public"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	h := newTestHub(t, alice.g, PublicOptions{Validator: handshake.AcceptAll{}})
	h.checkTracks(t, all)

	// Adds by value, no path.
	kpB, privB := bob.keyPackage(t, s)
	kpC, privC := carol.keyPackage(t, s)
	ch, _ := h.step(t, alice, CommitOptions{Add: []*message.KeyPackage{kpB, kpC}}, all, []*device{bob, carol}, []*message.KeyPackagePrivate{privB, privC})
	wantIDs(t, "added", ch.Added, bob.id, carol.id)
	if ch.Path || ch.External || ch.Epoch != 1 || string(ch.Committer.Identity) != alice.id {
		t.Fatalf("change %+v", ch)
	}

	// An Update by reference, committed by another member with a path.
	up, err := bob.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	h.broadcast(t, bob, up, all)
	ch, _ = h.step(t, carol, CommitOptions{}, all, nil, nil)
	wantIDs(t, "updated", ch.Updated, bob.id)
	if !ch.Path || ch.ByReference != 1 {
		t.Fatalf("change %+v", ch)
	}

	// A Remove by reference plus an Add by value.
	rm, err := alice.g.ProposeRemove(carol.g.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	h.broadcast(t, alice, rm, all)
	kpD, privD := dave.keyPackage(t, s)
	ch, _ = h.step(t, bob, CommitOptions{Add: []*message.KeyPackage{kpD}}, all, []*device{dave}, []*message.KeyPackagePrivate{privD})
	wantIDs(t, "removed", ch.Removed, carol.id)
	wantIDs(t, "added", ch.Added, dave.id)

	// A path-only commit, then an external join from the hub-checked GroupInfo.
	_, out := h.step(t, dave, CommitOptions{UpdatePath: true}, all, nil, nil)
	joinExternal(t, h, erin, out.GroupInfo, all)

	// Bob loses his state and rejoins by external commit (Resync).
	bob.g = nil
	g, commit, err := JoinExternal(testConfig(), mustGroupInfo(t, alice.g), bob.signer, message.BasicCredential(bob.id), ExternalJoinOptions{Resync: true})
	if err != nil {
		t.Fatal(err)
	}
	ch = h.commit(t, commit)
	wantIDs(t, "removed", ch.Removed, bob.id)
	wantIDs(t, "added", ch.Added, bob.id)
	if !ch.External || string(ch.Committer.Identity) != bob.id {
		t.Fatalf("change %+v", ch)
	}
	processAll(t, commit, bob, all)
	bob.g = g
	h.checkTracks(t, all)

	// An external PSK and new GroupContext extensions.
	psk := message.PreSharedKeyID{Type: message.PSKExternal, PSKID: []byte("psk"), Nonce: make([]byte, s.Nh())}
	for _, d := range all {
		d.g.SetExternalPSK(psk.PSKID, []byte("secret"))
	}
	rc := message.Extensions{{Type: message.ExtRequiredCapabilities, Data: (&message.RequiredCapabilities{}).Marshal()}}
	ch, _ = h.step(t, erin, CommitOptions{PSKs: []message.PreSharedKeyID{psk}, Extensions: rc}, all, nil, nil)
	if !ch.ExtensionsChanged || len(ch.Extensions) != 1 || !ch.Path {
		t.Fatalf("change %+v", ch)
	}
	// The hub's tree lets a new member join a later epoch too.
	fred := newDevice(t, s, "fred@f/1")
	all = append(all, fred)
	kpF, privF := fred.keyPackage(t, s)
	h.step(t, alice, CommitOptions{Add: []*message.KeyPackage{kpF}, Remove: []treemath.LeafIndex{dave.g.OwnLeaf()}, UpdatePath: true}, all,
		[]*device{fred}, []*message.KeyPackagePrivate{privF})
	checkAgreement(t, all)
}

func mustGroupInfo(t testing.TB, g *Group) []byte {
	t.Helper()
	gi, err := g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	return gi
}

// joinExternal has d join by external commit from groupInfo, which the
// hub must accept as its current one; the hub applies the commit, then
// the members in all process it.
func joinExternal(t testing.TB, h *testHub, d *device, groupInfo []byte, all []*device) {
	t.Helper()
	if err := h.pg.VerifyGroupInfo(groupInfo); err != nil {
		t.Fatal(err)
	}
	g, commit, err := JoinExternal(testConfig(), groupInfo, d.signer, message.BasicCredential(d.id), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch := h.commit(t, commit)
	wantIDs(t, "added", ch.Added, d.id)
	if !ch.External || string(ch.Committer.Identity) != d.id || len(ch.Removed) != 0 {
		t.Fatalf("change %+v", ch)
	}
	processAll(t, commit, d, all)
	d.g = g
	h.checkTracks(t, all)
}

// processAll has every active member but from process msg.
func processAll(t testing.TB, msg []byte, from *device, all []*device) {
	t.Helper()
	for _, o := range all {
		if o == from || o.g == nil || !o.g.Active() {
			continue
		}
		if _, err := o.g.Process(msg); err != nil {
			t.Fatalf("%s processing %s's message: %v", o.id, from.id, err)
		}
	}
}

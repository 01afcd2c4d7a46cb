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
	"hearth/keys/mls/treemath"
)

// device is a test client: a signer, a credential and, once joined, a
// group.
type device struct {
	id     string
	signer *suite.Signer
	g      *Group
}

func newDevice(t testing.TB, s *suite.Suite, id string) *device {
	t.Helper()
	signer, err := s.GenerateSignatureKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &device{id: id, signer: signer}
}

func testConfig() Config { return Config{Validator: handshake.AcceptAll{}} }

func (d *device) keyPackage(t testing.TB, s *suite.Suite) (*message.KeyPackage, *message.KeyPackagePrivate) {
	t.Helper()
	kp, priv, err := message.NewKeyPackage(s, rand.Reader, d.signer, message.BasicCredential(d.id), message.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kp, priv
}

// commitAndApply has d commit opts, applies it, and has every device in
// others process the commit; joiners (kps/privs) join from the Welcome.
func commitAndApply(t testing.TB, d *device, opts CommitOptions, others []*device, joiners []*device, privs []*message.KeyPackagePrivate) {
	t.Helper()
	commitThroughHub(t, nil, d, opts, others, joiners, privs)
}

// commitThroughHub is commitAndApply with a hub (if h is not nil) that
// verifies the commit before anyone applies it.
func commitThroughHub(t testing.TB, h *testHub, d *device, opts CommitOptions, others []*device, joiners []*device, privs []*message.KeyPackagePrivate) {
	t.Helper()
	out, err := d.g.Commit(opts)
	if err != nil {
		t.Fatalf("%s commit: %v", d.id, err)
	}
	if h != nil {
		h.commit(t, out.Commit)
	}
	if _, err := d.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		if o == d || o.g == nil || !o.g.Active() {
			continue
		}
		if _, err := o.g.Process(out.Commit); err != nil {
			t.Fatalf("%s processing %s's commit: %v", o.id, d.id, err)
		}
	}
	for i, j := range joiners {
		g, err := JoinFromWelcome(testConfig(), out.Welcome, opts.Add[i], privs[i], JoinOptions{})
		if err != nil {
			t.Fatalf("%s join: %v", j.id, err)
		}
		j.g = g
	}
}

func checkAgreement(t testing.TB, devs []*device) {
	t.Helper()
	var ref *device
	for _, d := range devs {
		if d.g == nil || !d.g.Active() {
			continue
		}
		if ref == nil {
			ref = d
			continue
		}
		if d.g.Epoch() != ref.g.Epoch() || !bytes.Equal(d.g.EpochAuthenticator(), ref.g.EpochAuthenticator()) {
			t.Fatalf("%s (epoch %d) disagrees with %s (epoch %d)", d.id, d.g.Epoch(), ref.id, ref.g.Epoch())
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	for _, id := range []suite.ID{suite.ID(1), suite.ID(0xF001)} {
		s, err := suite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(id.String(), func(t *testing.T) { groupLifecycle(t, s) })
	}
}

func groupLifecycle(t *testing.T, s *suite.Suite) {
	alice, bob, carol := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1"), newDevice(t, s, "carol@c/1")
	g, err := NewGroup(testConfig(), s, []byte("group-1"), alice.signer, message.BasicCredential(alice.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g = g
	all := []*device{alice, bob, carol}
	kpB, privB := bob.keyPackage(t, s)
	kpC, privC := carol.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kpB, kpC}}, all, []*device{bob, carol}, []*message.KeyPackagePrivate{privB, privC})
	checkAgreement(t, all)
	if n := len(bob.g.Members()); n != 3 {
		t.Fatalf("bob sees %d members", n)
	}
	// Messages both ways.
	ct, err := bob.g.Encrypt([]byte("hello"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, carol} {
		res, err := d.g.Process(ct)
		if err != nil {
			t.Fatal(err)
		}
		if res.Kind != message.ContentApplication || string(res.Plaintext) != "hello" || string(res.SenderIdentity) != bob.id {
			t.Fatalf("%s got %+v", d.id, res)
		}
	}
	if _, err := alice.g.Process(ct); err == nil {
		t.Fatal("replay accepted")
	}
	// Update proposal by carol, committed by bob with a path.
	upd, err := carol.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, bob} {
		if _, err := d.g.Process(upd); err != nil {
			t.Fatal(err)
		}
	}
	commitAndApply(t, bob, CommitOptions{}, all, nil, nil)
	checkAgreement(t, all)
	// Remove carol; she learns she was removed.
	commitAndApply(t, alice, CommitOptions{Remove: []treemath.LeafIndex{carol.g.OwnLeaf()}}, all, nil, nil)
	if carol.g.Active() {
		t.Fatal("carol still active after removal")
	}
	checkAgreement(t, all)
	after, err := alice.g.Encrypt([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.g.Process(after); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed member processed a message: %v", err)
	}
	// External join of dave from the GroupInfo of the last commit.
	out, err := bob.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Process(out.Commit); err != nil {
		t.Fatal(err)
	}
	dave := newDevice(t, s, "dave@a/2")
	dg, commit, err := JoinExternal(testConfig(), out.GroupInfo, dave.signer, message.BasicCredential(dave.id), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dave.g = dg
	for _, d := range []*device{alice, bob} {
		res, err := d.g.Process(commit)
		if err != nil {
			t.Fatalf("%s processing external commit: %v", d.id, err)
		}
		if len(res.Added) != 1 || string(res.Added[0].Identity) != dave.id {
			t.Fatalf("external commit result %+v", res)
		}
	}
	checkAgreement(t, []*device{alice, bob, dave})
	msg, err := dave.g.Encrypt([]byte("hi from dave"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := alice.g.Process(msg); err != nil || string(res.Plaintext) != "hi from dave" {
		t.Fatalf("alice reading dave: %v", err)
	}
}

func TestGroupExporterAndAccessors(t *testing.T) {
	s, _ := suite.Lookup(1)
	a := newDevice(t, s, "a@x/1")
	g, err := NewGroup(testConfig(), s, []byte("g"), a.signer, message.BasicCredential(a.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := g.Export("hearth test", []byte("ctx"), 32)
	if err != nil || len(k1) != 32 {
		t.Fatal(err)
	}
	if g.Epoch() != 0 || g.OwnLeaf() != 0 || string(g.GroupID()) != "g" || g.Suite().ID() != 1 {
		t.Fatal("accessors")
	}
	if l, ok := g.LeafOf([]byte(a.id)); !ok || l != 0 {
		t.Fatal(fmt.Sprint("LeafOf ", l, ok))
	}
}

// restoreDevice replaces d's group with a restored copy of its saved state.
func restoreDevice(t testing.TB, d *device) {
	t.Helper()
	b, err := d.g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := UnmarshalGroup(b, handshake.AcceptAll{})
	if err != nil {
		t.Fatalf("%s restore: %v", d.id, err)
	}
	b2, err := g.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("%s: restored state marshals differently (%v)", d.id, err)
	}
	d.g = g
}

func TestGroupStateRoundTrip(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1")
	g, err := NewGroup(testConfig(), s, []byte("g"), alice.signer, message.BasicCredential(alice.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g = g
	kp, priv := bob.keyPackage(t, s)
	pb, err := message.UnmarshalKeyPackagePrivate(priv.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	out, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kp}})
	if err != nil {
		t.Fatal(err)
	}
	restoreDevice(t, alice) // with the pending commit
	if p, ok := alice.g.PendingCommit(); !ok || !bytes.Equal(p.Commit, out.Commit) {
		t.Fatal("pending commit lost")
	}
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	lookup := func(ref []byte) (*message.KeyPackagePrivate, error) {
		if !bytes.Equal(ref, kp.Ref(s)) {
			return nil, errors.New("unknown")
		}
		return pb, nil
	}
	var ref []byte
	if bob.g, ref, err = JoinWelcome(testConfig(), out.Welcome, lookup, JoinOptions{}); err != nil || !bytes.Equal(ref, kp.Ref(s)) {
		t.Fatal(err)
	}
	if dk, err := message.DecodeKeyPackage(kp.Message()); err != nil || !bytes.Equal(dk.Marshal(), kp.Marshal()) {
		t.Fatalf("DecodeKeyPackage: %v", err)
	}
	early, err := alice.g.Encrypt([]byte("before"), nil)
	if err != nil {
		t.Fatal(err)
	}
	restoreDevice(t, alice)
	restoreDevice(t, bob)
	commitAndApply(t, bob, CommitOptions{UpdatePath: true}, []*device{alice, bob}, nil, nil)
	restoreDevice(t, alice)
	restoreDevice(t, bob)
	// A message of the previous epoch still decrypts after the commit and
	// a save/restore.
	if res, err := bob.g.Process(early); err != nil || string(res.Plaintext) != "before" {
		t.Fatalf("previous-epoch message: %v", err)
	}
	checkAgreement(t, []*device{alice, bob})
	if _, err := UnmarshalGroup([]byte{1, 2, 3}, handshake.AcceptAll{}); err == nil {
		t.Fatal("garbage state accepted")
	}
}

// TestGroupPrivateHandshake: a proposal and a commit sent as
// PrivateMessage (Hearth sends them as PublicMessage, other clients may
// not) are processed like public ones.
func TestGroupPrivateHandshake(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("g"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kp, priv := bob.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	// asPrivate re-protects a PublicMessage's content as a PrivateMessage
	// of alice's current epoch.
	asPrivate := func(pub []byte) []byte {
		var m message.MLSMessage
		if err := m.Unmarshal(pub); err != nil {
			t.Fatal(err)
		}
		ac, err := message.SignContent(s, alice.signer, message.WirePrivateMessage, &m.PublicMessage.Content, &alice.g.st.ctx)
		if err != nil {
			t.Fatal(err)
		}
		ac.Auth.ConfirmationTag = m.PublicMessage.Auth.ConfirmationTag
		pm, err := message.EncryptPrivate(s, rand.Reader, ac, alice.g.st.keys, 32)
		if err != nil {
			t.Fatal(err)
		}
		return (&message.MLSMessage{WireFormat: message.WirePrivateMessage, PrivateMessage: pm}).Marshal()
	}
	// A commit re-signed for PrivateMessage has a different transcript
	// (the wire format is hashed), so its confirmation tag no longer
	// matches: refused, nothing changes.
	out, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.DiscardPendingCommit()
	warm, _ := alice.g.Encrypt([]byte("warm-up"), nil) // see TestGroupRejectsBadMessages
	if _, err := bob.g.Process(warm); err != nil {
		t.Fatal(err)
	}
	private := asPrivate(out.Commit)
	before := mustMarshal(t, bob.g)
	if _, err := bob.g.Process(private); !errors.Is(err, message.ErrAuth) {
		t.Fatalf("re-framed commit: %v", err)
	}
	if string(before) != string(mustMarshal(t, bob.g)) {
		t.Fatal("refused private commit changed state")
	}
	// A proposal sent as PrivateMessage is verified and cached under the
	// reference of what was received; bob's commit includes it.
	prop, err := alice.g.ProposeGroupContextExtensions(message.Extensions{{Type: message.ExtApplicationID, Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := bob.g.Process(asPrivate(prop))
	if err != nil || res.Kind != message.ContentProposal || res.Proposal.Type != message.ProposalGroupContextExtensions {
		t.Fatalf("private proposal: %v", err)
	}
	if _, err := bob.g.Commit(CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if ext := bob.g.Extensions(); len(ext) != 1 || string(ext[0].Data) != "x" {
		t.Fatalf("extensions after GroupContextExtensions commit: %v", ext)
	}
}

// TestGroupConcurrentCommits: two members commit in the same epoch; the
// hub takes alice's. Bob's pending commit is discarded when he processes
// alice's, and he commits again in the new epoch.
func TestGroupConcurrentCommits(t *testing.T) {
	s, _ := suite.Lookup(0xF001)
	alice, bob, carol := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1"), newDevice(t, s, "carol@c/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("g"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kp, priv := bob.keyPackage(t, s)
	all := []*device{alice, bob}
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, all, []*device{bob}, []*message.KeyPackagePrivate{priv})
	kpC, privC := carol.keyPackage(t, s)
	bobOut, err := bob.g.Commit(CommitOptions{Add: []*message.KeyPackage{kpC}})
	if err != nil {
		t.Fatal(err)
	}
	if len(bobOut.Added) != 1 || string(bobOut.Added[0].Identity) != carol.id {
		t.Fatalf("CommitOutput.Added = %+v", bobOut.Added)
	}
	if _, err := bob.g.Commit(CommitOptions{}); !errors.Is(err, ErrPending) {
		t.Fatalf("second pending commit: %v", err)
	}
	aliceOut, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	// A forged commit does not discard bob's pending commit.
	bad := append([]byte(nil), aliceOut.Commit...)
	bad[len(bad)-5] ^= 1
	if _, err := bob.g.Process(bad); err == nil {
		t.Fatal("tampered commit accepted")
	}
	if _, ok := bob.g.PendingCommit(); !ok {
		t.Fatal("a refused commit discarded the pending one")
	}
	if _, err := bob.g.Process(aliceOut.Commit); err != nil {
		t.Fatal(err)
	}
	if _, ok := bob.g.PendingCommit(); ok {
		t.Fatal("pending commit survived the winning commit")
	}
	if _, err := bob.g.ApplyPendingCommit(); !errors.Is(err, ErrPending) {
		t.Fatalf("apply without pending: %v", err)
	}
	checkAgreement(t, all)
	commitAndApply(t, bob, CommitOptions{Add: []*message.KeyPackage{kpC}}, all, []*device{carol}, []*message.KeyPackagePrivate{privC})
	checkAgreement(t, []*device{alice, bob, carol})
}

// TestGroupCommitFiltersProposals: a committer leaves out cached
// proposals that cannot go together (an Update of a leaf being removed,
// a duplicate Remove, its own Update, a duplicate Add) and the others
// agree on the result.
func TestGroupCommitFiltersProposals(t *testing.T) {
	s, _ := suite.Lookup(1)
	devs := []*device{newDevice(t, s, "a@x/1"), newDevice(t, s, "b@x/1"), newDevice(t, s, "c@x/1"), newDevice(t, s, "d@x/1")}
	var err error
	if devs[0].g, err = NewGroup(testConfig(), s, []byte("g"), devs[0].signer, message.BasicCredential(devs[0].id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	var kps []*message.KeyPackage
	var privs []*message.KeyPackagePrivate
	for _, d := range devs[1:3] {
		kp, priv := d.keyPackage(t, s)
		kps, privs = append(kps, kp), append(privs, priv)
	}
	commitAndApply(t, devs[0], CommitOptions{Add: kps}, devs, devs[1:3], privs)
	a, b, c := devs[0], devs[1], devs[2]
	kpD, privD := devs[3].keyPackage(t, s)
	broadcast := func(from *device, msg []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs[:3] {
			if d != from {
				if _, err := d.g.Process(msg); err != nil {
					t.Fatalf("%s: %v", d.id, err)
				}
			}
		}
	}
	m, err := c.g.ProposeUpdate()
	broadcast(c, m, err)
	m, err = b.g.ProposeRemove(c.g.OwnLeaf())
	broadcast(b, m, err)
	m, err = a.g.ProposeRemove(c.g.OwnLeaf())
	broadcast(a, m, err)
	m, err = a.g.ProposeUpdate()
	broadcast(a, m, err)
	m, err = b.g.ProposeAdd(kpD)
	broadcast(b, m, err)
	m, err = a.g.ProposeAdd(kpD)
	broadcast(a, m, err)
	out, err := a.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var msg message.MLSMessage
	if err := msg.Unmarshal(out.Commit); err != nil {
		t.Fatal(err)
	}
	if n := len(msg.PublicMessage.Content.Commit.Proposals); n != 2 {
		t.Fatalf("commit includes %d proposals, want 2 (one Remove, one Add)", n)
	}
	if _, err := a.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	res, err := b.g.Process(out.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || string(res.Removed[0].Identity) != c.id || len(res.Added) != 1 {
		t.Fatalf("result %+v", res)
	}
	if res, err := c.g.Process(out.Commit); err != nil || !res.SelfRemoved || c.g.Active() {
		t.Fatalf("c: %v", err)
	}
	if devs[3].g, err = JoinFromWelcome(testConfig(), out.Welcome, kpD, privD, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	checkAgreement(t, devs)
}

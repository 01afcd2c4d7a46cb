package mls

import (
	"crypto/rand"
	"errors"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// twoMembers returns alice and bob in a fresh group on suite s.
func twoMembers(t testing.TB, s *suite.Suite, opts GroupOptions, bobKP message.KeyPackageOptions) (*device, *device) {
	t.Helper()
	alice, bob := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("features"), alice.signer, message.BasicCredential(alice.id), opts); err != nil {
		t.Fatal(err)
	}
	kp, priv, err := message.NewKeyPackage(s, rand.Reader, bob.signer, message.BasicCredential(bob.id), bobKP)
	if err != nil {
		t.Fatal(err)
	}
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	return alice, bob
}

// TestGroupPSKs: commits that inject an external PSK and a resumption PSK
// reach the same epoch at both members; an unknown PSK is refused.
func TestGroupPSKs(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	all := []*device{alice, bob}
	nonce := func() []byte {
		n := make([]byte, s.Nh())
		rand.Read(n)
		return n
	}
	ext := message.PreSharedKeyID{Type: message.PSKExternal, PSKID: []byte("hearth-psk"), Nonce: nonce()}
	if _, err := alice.g.Commit(CommitOptions{PSKs: []message.PreSharedKeyID{ext}}); !errors.Is(err, ErrPSK) {
		t.Fatalf("unknown PSK: %v", err)
	}
	alice.g.SetExternalPSK(ext.PSKID, []byte("shared secret"))
	out, err := alice.g.Commit(CommitOptions{PSKs: []message.PreSharedKeyID{ext}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(out.Commit); !errors.Is(err, ErrPSK) {
		t.Fatalf("bob without the PSK: %v", err)
	}
	bob.g.SetExternalPSK(ext.PSKID, []byte("shared secret"))
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(out.Commit); err != nil {
		t.Fatal(err)
	}
	checkAgreement(t, all)
	res := message.PreSharedKeyID{Type: message.PSKResumption, Usage: message.ResumptionApplication, PSKGroupID: alice.g.GroupID(),
		PSKEpoch: alice.g.Epoch() - 1, Nonce: nonce()}
	commitAndApply(t, bob, CommitOptions{PSKs: []message.PreSharedKeyID{res}}, all, nil, nil)
	checkAgreement(t, all)
	bad := res
	bad.Usage = message.ResumptionBranch
	if _, err := alice.g.Commit(CommitOptions{PSKs: []message.PreSharedKeyID{bad}}); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("branch PSK: %v", err)
	}
}

// TestGroupRequiredCapabilities: a group requiring an extension type
// refuses KeyPackages that do not support it, and a
// GroupContextExtensions proposal needs every member's support.
func TestGroupRequiredCapabilities(t *testing.T) {
	s, _ := suite.Lookup(0xF001)
	const hearthExt message.ExtensionType = 0xF0A1
	rc := (&message.RequiredCapabilities{Extensions: []message.ExtensionType{hearthExt}}).Marshal()
	supports := message.KeyPackageOptions{Capabilities: message.Capabilities{Extensions: []message.ExtensionType{hearthExt}}}
	opts := GroupOptions{Extensions: message.Extensions{{Type: message.ExtRequiredCapabilities, Data: rc}}, Leaf: supports}
	alice, bob := twoMembers(t, s, opts, supports)
	carol := newDevice(t, s, "carol@c/1")
	kp, _ := carol.keyPackage(t, s)
	if _, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kp}}); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("add without required capability: %v", err)
	}
	// Now set the private-use extension itself.
	newExt := message.Extensions{{Type: message.ExtRequiredCapabilities, Data: rc}, {Type: hearthExt, Data: []byte("name=Team")}}
	commitAndApply(t, alice, CommitOptions{Extensions: newExt}, []*device{alice, bob}, nil, nil)
	checkAgreement(t, []*device{alice, bob})
	if data, ok := bob.g.Extensions().Find(hearthExt); !ok || string(data) != "name=Team" {
		t.Fatal("bob does not see the group extension")
	}
	if _, err := NewGroup(testConfig(), s, []byte("x"), carol.signer, message.BasicCredential(carol.id), GroupOptions{Extensions: opts.Extensions}); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("creator without required capability: %v", err)
	}
}

// TestGroupEpochWindow: application messages of the last KeepEpochs
// epochs decrypt after commits; out-of-order messages within the
// secret tree window decrypt once each.
func TestGroupEpochWindow(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	all := []*device{alice, bob}
	var msgs [][]byte
	for range 3 {
		for range 2 {
			m, err := alice.g.Encrypt([]byte("m"), nil)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		commitAndApply(t, bob, CommitOptions{UpdatePath: true}, all, nil, nil)
	}
	// msgs[0:2] are three epochs old: gone. The others decrypt, newest
	// first (out of order).
	for i := len(msgs) - 1; i >= 2; i-- {
		if _, err := bob.g.Process(msgs[i]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range 2 {
		if _, err := bob.g.Process(msgs[i]); !errors.Is(err, handshake.ErrEpoch) {
			t.Fatalf("message %d of an expired epoch: %v", i, err)
		}
	}
}

// TestGroupExternalResync: a device that lost its state rejoins by
// external commit, replacing its old leaf.
func TestGroupExternalResync(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	out, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(out.Commit); err != nil {
		t.Fatal(err)
	}
	oldLeaf := bob.g.OwnLeaf()
	fresh := &device{id: bob.id, signer: newDevice(t, s, bob.id).signer}
	if _, _, err := JoinExternal(testConfig(), out.GroupInfo, fresh.signer, message.BasicCredential(bob.id), ExternalJoinOptions{}); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("external join of an existing member without Resync: %v", err)
	}
	g, commit, err := JoinExternal(testConfig(), out.GroupInfo, fresh.signer, message.BasicCredential(bob.id), ExternalJoinOptions{Resync: true})
	if err != nil {
		t.Fatal(err)
	}
	fresh.g = g
	res, err := alice.g.Process(commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Leaf != oldLeaf || len(alice.g.Members()) != 2 {
		t.Fatalf("resync result %+v, %d members", res, len(alice.g.Members()))
	}
	checkAgreement(t, []*device{alice, fresh})
	// The lost device's old state, if it ever comes back, learns that its
	// leaf was removed.
	if res, err := bob.g.Process(commit); err != nil || !res.SelfRemoved || bob.g.Active() {
		t.Fatalf("old state processing the resync commit: %v", err)
	}
}

// TestKeyPackageLastResort: a last-resort package is marked, still
// verifies, and can be used by two Welcomes.
func TestKeyPackageLastResort(t *testing.T) {
	s, _ := suite.Lookup(1)
	bob := newDevice(t, s, "bob@b/1")
	kp, priv, err := message.NewKeyPackage(s, rand.Reader, bob.signer, message.BasicCredential(bob.id), message.KeyPackageOptions{LastResort: true})
	if err != nil {
		t.Fatal(err)
	}
	if !kp.LastResort() {
		t.Fatal("not marked last resort")
	}
	dk, err := message.DecodeKeyPackage(kp.Message())
	if err != nil || !dk.LastResort() {
		t.Fatalf("decoded: %v", err)
	}
	for _, name := range []string{"g1", "g2"} {
		alice := newDevice(t, s, "alice@a/1")
		if alice.g, err = NewGroup(testConfig(), s, []byte(name), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
			t.Fatal(err)
		}
		commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{dk}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	}
	if plain, _, _ := message.NewKeyPackage(s, rand.Reader, bob.signer, message.BasicCredential(bob.id), message.KeyPackageOptions{}); plain.LastResort() {
		t.Fatal("plain package marked last resort")
	}
}

// TestGroupRefusesDuplicateDevice: a device identity holds one leaf.
func TestGroupRefusesDuplicateDevice(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	again, _ := newDevice(t, s, bob.id).keyPackage(t, s) // same identity, new keys
	if _, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{again}}); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("adding an existing member: %v", err)
	}
	if _, err := bob.g.ProposeAdd(again); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("proposing an existing member: %v", err)
	}
}

// TestGroupUpdateKeepsIdentity: an Update that changes the device
// identity is refused.
func TestGroupUpdateKeepsIdentity(t *testing.T) {
	s, _ := suite.Lookup(1)
	_, bob := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	_, pub, err := s.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	self := bob.g.OwnLeaf()
	leaf := *bob.g.st.tree.Leaf(self)
	leaf.EncryptionKey, leaf.Source, leaf.Lifetime, leaf.ParentHash = pub, message.SourceUpdate, message.Lifetime{}, nil
	leaf.Credential = message.BasicCredential("carol@c/1")
	if err := leaf.Sign(s, bob.signer, bob.g.GroupID(), self); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.g.propose(&message.Proposal{Type: message.ProposalUpdate, Update: &leaf}); !errors.Is(err, handshake.ErrProposal) {
		t.Fatalf("identity-changing Update: %v", err)
	}
}

func TestGroupClear(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, _ := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	exporter, sds := alice.g.st.secrets.ExporterSecret, alice.g.st.keys.SenderDataSecret
	alice.g.Clear()
	if _, err := alice.g.Encrypt([]byte("x"), nil); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Encrypt after Clear: %v", err)
	}
	for _, b := range append(exporter, sds...) {
		if b != 0 {
			t.Fatal("secret not zeroed")
		}
	}
}

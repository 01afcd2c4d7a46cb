package mls

import (
	"crypto/rand"
	"errors"
	"testing"

	"hearth/keys/identity"
	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

var _ handshake.CredentialValidator = (*identity.Validator)(nil)

// listDevices signs a device list for user with the given devices' MLS
// signature keys and adds it to v.
func listDevices(t *testing.T, v *identity.Validator, user identity.UserAddress, devs map[string]*device) {
	t.Helper()
	k, err := identity.NewRecoveryKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l := &identity.DeviceList{User: user, Version: 1, IssuedMs: 1_700_000_000_000}
	for id, d := range devs {
		l.Devices = append(l.Devices, identity.Device{DeviceID: id, SignatureKey: d.signer.Public(), Name: id, AddedMs: 1})
	}
	list, sig, err := l.Sign(k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Add(k.Signer().Public(), list, sig); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCredentialValidator: with *identity.Validator, a device that is
// not on its user's signed list is refused when added, at join and in a
// received commit.
func TestGroupCredentialValidator(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice := newDevice(t, s, "alice@a.example/PHONE")
	bob := newDevice(t, s, "bob@b.example/PHONE")
	rogue := newDevice(t, s, "bob@b.example/LAPTOP") // not on bob's list
	v := identity.NewValidator()
	listDevices(t, v, identity.UserAddress{Local: "alice", Domain: "a.example"}, map[string]*device{"PHONE": alice})
	listDevices(t, v, identity.UserAddress{Local: "bob", Domain: "b.example"}, map[string]*device{"PHONE": bob})
	cfg := Config{Validator: v}
	var err error
	if alice.g, err = NewGroup(cfg, s, []byte("g"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kpR, privR := rogue.keyPackage(t, s)
	if _, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kpR}}); !errors.Is(err, handshake.ErrCredential) {
		t.Fatalf("adding an unlisted device: %v", err)
	}
	kpB, privB := bob.keyPackage(t, s)
	out, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kpB}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if bob.g, err = JoinFromWelcome(cfg, out.Welcome, kpB, privB, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	// A committer that skips the check (here: accepts everyone) adds the
	// rogue device; bob refuses the commit, and the rogue cannot join
	// with a validating client.
	lax, err := UnmarshalGroup(mustMarshal(t, alice.g), handshake.AcceptAll{})
	if err != nil {
		t.Fatal(err)
	}
	out, err = lax.Commit(CommitOptions{Add: []*message.KeyPackage{kpR}})
	if err != nil {
		t.Fatal(err)
	}
	before := mustMarshal(t, bob.g)
	if _, err := bob.g.Process(out.Commit); !errors.Is(err, handshake.ErrCredential) {
		t.Fatalf("bob accepted a commit adding an unlisted device: %v", err)
	}
	if string(before) != string(mustMarshal(t, bob.g)) {
		t.Fatal("refused commit changed bob's state")
	}
	if _, err := JoinFromWelcome(Config{Validator: identity.NewValidator()}, out.Welcome, kpR, privR, JoinOptions{}); !errors.Is(err, handshake.ErrCredential) {
		t.Fatalf("join with unknown members: %v", err)
	}
}

func mustMarshal(t testing.TB, g *Group) []byte {
	t.Helper()
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublicGroupIdentityValidator: a hub verifying with
// *identity.Validator refuses a commit that adds a device not on its
// user's signed list, even from a member whose client skips the check, and
// accepts the same group's listed devices.
func TestPublicGroupIdentityValidator(t *testing.T) {
	s, _ := suite.Lookup(0xF001)
	alice := newDevice(t, s, "alice@a.example/PHONE")
	bob := newDevice(t, s, "bob@b.example/PHONE")
	rogue := newDevice(t, s, "bob@c.example/PHONE") // a third server's device nobody listed
	v := identity.NewValidator()
	listDevices(t, v, identity.UserAddress{Local: "alice", Domain: "a.example"}, map[string]*device{"PHONE": alice})
	listDevices(t, v, identity.UserAddress{Local: "bob", Domain: "b.example"}, map[string]*device{"PHONE": bob})
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("g"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	h := newTestHub(t, alice.g, PublicOptions{Validator: v})
	kpR, _ := rogue.keyPackage(t, s)
	out, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kpR}}) // alice's client accepts everyone
	if err != nil {
		t.Fatal(err)
	}
	alice.g.DiscardPendingCommit()
	before := h.pg.Marshal()
	if _, _, err := h.pg.Apply(out.Commit, h.opts); !errors.Is(err, handshake.ErrCredential) {
		t.Fatalf("hub accepted an unlisted device: %v", err)
	}
	if string(before) != string(h.pg.Marshal()) {
		t.Fatal("refused commit changed the hub's state")
	}
	kpB, privB := bob.keyPackage(t, s)
	ch, _ := h.step(t, alice, CommitOptions{Add: []*message.KeyPackage{kpB}}, []*device{alice, bob}, []*device{bob}, []*message.KeyPackagePrivate{privB})
	wantIDs(t, "added", ch.Added, bob.id)
}

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hearth/homeserver/certs"
)

// TestFederationGroupRevokedRemoteDevice: a group with the admin key
// (decision 0003) hubbed at a.example, with alice (its creator, the only
// admin) and carol on a and bob on b.example. bob links two more
// devices, which join the group; a device of bob logged in with his
// recovery key and in no conversation (so its own roster check finds
// nothing to do) revokes one of them. alice's `group add` still works
// (her client's roster check first commits the removal, unsigned), and
// after a second such revocation carol, no admin, can still send to the
// group: her client's roster check commits the removal of the revoked
// device (with the addition of bob's new one) and the hub counts a remote
// device that is no longer on its user's signed list as revoked, as
// clients do. Everyone receives her message.
func TestFederationGroupRevokedRemoteDevice(t *testing.T) {
	parallelE2E(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	pinPair(t, a, b)
	const aliceAt, bobAt, carolAt = "alice@a.example", "bob@b.example", "carol@a.example"
	aLogin := func(u string) []string {
		return []string{"login", u + "@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin"}
	}
	bobLogin := []string{"login", bobAt, "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin"}
	for _, u := range []string{"alice", "carol"} {
		mustHearth(t, password(u), "admin", "--dir", a.dir, "user", "add", u, "--password-stdin")
	}
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	alice, carol, bob := newProfile(t, "alice"), newProfile(t, "carol"), newProfile(t, "bob")
	alice.must(t, password("alice"), aLogin("alice")...)
	carol.must(t, password("carol"), aLogin("carol")...)
	kv := keyValues(bob.must(t, password("bob"), bobLogin...))
	keyFile := filepath.Join(t.TempDir(), "recovery")
	if err := os.WriteFile(keyFile, []byte(kv["recovery-key"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*profile{alice, bob, carol} {
		p.must(t, "", "recv", "--timeout", "1s") // publishes KeyPackages
	}
	out := strings.Split(strings.TrimSpace(alice.must(t, "", "group", "create", "team", "--members", bobAt+","+carolAt)), "\n")
	id := out[len(out)-1]
	if !strings.HasSuffix(id, "@a.example") {
		t.Fatalf("create printed %q", out)
	}
	if gi := groupInfo(t, alice, id); len(gi.Admins) != 1 || gi.Admins[0] != aliceAt {
		t.Fatalf("alice sees %+v", gi)
	}
	alice.must(t, "", "send", id, "hello team")
	recvUntil(t, bob, aliceAt, "hello team")
	recvUntil(t, carol, aliceAt, "hello team")

	// bob's second and third devices are linked and join the group.
	linked := func() (*profile, string) {
		t.Helper()
		p := newProfile(t, "bob")
		linkFedDevice(t, p, bob, bobLogin...)
		for _, d := range devices(t, p) {
			if d.This {
				return p, d.Device
			}
		}
		t.Fatal("bob's new device not listed")
		return nil, ""
	}
	bob2, bob2ID := linked()
	bob3, bob3ID := linked()
	alice.must(t, "", "send", id, "with bob's new devices")
	for _, p := range []*profile{bob2, bob3, bob, carol} {
		recvUntil(t, p, aliceAt, "with bob's new devices")
	}
	// revoke revokes device from a new device of bob logged in with his
	// recovery key: in no conversation, its own roster check does nothing.
	revoke := func(device string) *profile {
		t.Helper()
		p := newProfile(t, "bob")
		if kv := keyValues(p.must(t, password("bob"), append(bobLogin, "--recovery-key-file", keyFile)...)); kv["status"] != "active" {
			t.Fatalf("recovery login: %v", kv)
		}
		if out := p.must(t, "", "device", "revoke", device); !strings.Contains(out, "revoked: "+device) {
			t.Fatalf("revoke output %q", out)
		}
		return p
	}

	// The admin's group add: her client's roster check first commits the
	// removal of the revoked device, without the admin signature.
	revoke(bob2ID)
	mustHearth(t, password("dave"), "admin", "--dir", a.dir, "user", "add", "dave", "--password-stdin")
	dave := newProfile(t, "dave")
	dave.must(t, password("dave"), aLogin("dave")...)
	dave.must(t, "", "recv", "--timeout", "1s")
	alice.must(t, "", "group", "add", id, "dave@a.example")
	// dave joins now: a Welcome whose tree holds a device revoked since is
	// refused by the joiner's list check (a client matter, not this test's).
	if evs := recvGroup(t, dave); !slices.ContainsFunc(evs, func(e groupEvent) bool { return e.Conversation == id }) {
		t.Fatalf("dave events %+v", evs)
	}

	// carol, no admin, still sends to the group; everyone receives it.
	bob5 := revoke(bob3ID)
	carol.must(t, "", "send", id, "after the revoke")
	for _, p := range []*profile{alice, bob, bob5} {
		recvUntil(t, p, carolAt, "after the revoke")
	}
	recvUntil(t, dave, carolAt, "after the revoke")
	bob.must(t, "", "send", id, "bob still here")
	recvUntil(t, alice, bobAt, "bob still here")
	recvUntil(t, carol, bobAt, "bob still here")
	a.srv.stop(t, os.Interrupt)
	b.srv.stop(t, os.Interrupt)
}

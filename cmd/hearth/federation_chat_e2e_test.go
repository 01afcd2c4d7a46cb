package main

import (
	"path/filepath"
	"testing"

	"hearth/homeserver/certs"
)

// TestFederationChatE2E: alice@a.example and bob@b.example, each on their
// own `hearth serve`, talk with `hearth chat` (real MLS through the client
// library): the conversation is hubbed at the sender's server and the
// other side follows it through federation.
func TestFederationChatE2E(t *testing.T) {
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	a.admin(t, "", "federation", "peer", "add", "b.example", "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
	b.admin(t, "", "federation", "peer", "add", "a.example", "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
	for _, u := range []struct {
		s    *fedServer
		name string
	}{{a, "alice"}, {b, "bob"}} {
		mustHearth(t, password(u.name), "admin", "--dir", u.s.dir, "user", "add", u.name, "--password-stdin")
	}
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), "login", "alice@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), "login", "bob@b.example", "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")

	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	alice.must(t, "", "send", bobAt, "hello across domains")
	expectRecv(t, bob, aliceAt+":hello across domains")
	bob.must(t, "", "send", aliceAt, "hi from b")
	expectRecv(t, alice, bobAt+":hi from b")
	if got := sameHistory(t, []*profile{alice, bob}, []string{bobAt, aliceAt}); got != 2 {
		t.Fatalf("history has %d messages, want 2", got)
	}
}

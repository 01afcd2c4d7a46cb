package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"hearth/homeserver/certs"
)

// TestRecvTellsParkedConversation: carol (a.example) is added to a group
// with bob (b.example) while b.example is down. Her device cannot check
// bob's devices in the Welcome, so the group waits (is parked) while her
// other conversations go on; `recv` says so on standard error (the group,
// how many updates are held, since when, why) instead of showing nothing.
// Once b.example is back, the next recv joins the group, shows what was
// held and no longer mentions it.
func TestRecvTellsParkedConversation(t *testing.T) {
	parallelE2E(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	pinPair(t, a, b)
	const aliceAt, bobAt, carolAt = "alice@a.example", "bob@b.example", "carol@a.example"
	aLogin := func(u string) []string {
		return []string{"login", u + "@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin"}
	}
	for _, u := range []string{"alice", "carol"} {
		mustHearth(t, password(u), "admin", "--dir", a.dir, "user", "add", u, "--password-stdin")
	}
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	alice, carol, bob := newProfile(t, "alice"), newProfile(t, "carol"), newProfile(t, "bob")
	alice.must(t, password("alice"), aLogin("alice")...)
	carol.must(t, password("carol"), aLogin("carol")...)
	bob.must(t, password("bob"), "login", bobAt, "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")
	for _, p := range []*profile{alice, bob, carol} {
		p.must(t, "", "recv", "--timeout", "1s") // publishes KeyPackages
	}
	out := strings.Split(strings.TrimSpace(alice.must(t, "", "group", "create", "team", "--members", bobAt+","+carolAt)), "\n")
	id := out[len(out)-1]
	alice.must(t, "", "send", id, "hello team")
	alice.must(t, "", "send", carolAt, "a direct one")

	b.srv.stop(t, os.Interrupt)
	r := carol.chat(t, "", "recv", "--timeout", "2s")
	if r.code != 0 {
		t.Fatalf("recv: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "a direct one") || strings.Contains(r.stdout, "hello team") {
		t.Fatalf("while the group waits, carol got:\n%s", r.stdout)
	}
	// The group's name is inside the Welcome that waits: the id is shown.
	if !regexp.MustCompile(`hearth: conversation `+regexp.QuoteMeta(id)+`: \d+ updates held since`).MatchString(r.stderr) || !strings.Contains(r.stderr, "b.example is unreachable") ||
		!strings.Contains(r.stderr, "waiting for a device list that cannot be fetched yet") {
		t.Fatalf("recv did not say that the group waits:\n%s", r.stderr)
	}

	b.start(t)
	pinPair(t, a, b)
	recvUntil(t, carol, aliceAt, "hello team")
	if r := carol.chat(t, "", "recv", "--timeout", "1s"); strings.Contains(r.stderr, "held since") {
		t.Fatalf("recv still tells of a parked group once it was applied:\n%s", r.stderr)
	}
}

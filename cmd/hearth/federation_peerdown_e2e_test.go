package main

import (
	"strings"
	"syscall"
	"testing"
)

// TestFederationSendWhilePeerDown: alice@a.example keeps writing to bob
// while bob's server is down. The conversation is hubbed at a, so her sends
// are accepted there (she cannot re-check bob's device list, and keeps the
// devices bob already has) and queued for b; bob gets them, once and in
// order, when b is back.
func TestFederationSendWhilePeerDown(t *testing.T) {
	skipShort(t)
	_, b, alice, bob := fedPair(t)

	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	alice.must(t, "", "send", bobAt, "before")
	expectRecv(t, bob, aliceAt+":before")

	b.srv.stop(t, syscall.SIGTERM)
	alice.must(t, "", "send", bobAt, "while b is down 1")
	alice.must(t, "", "send", bobAt, "while b is down 2")
	b.start(t)
	all := recvUntil(t, bob, aliceAt, "while b is down 2")
	// Nothing after the wanted message is lost: one more quiet round.
	all = append(all, parseMsgs(t, bob.must(t, "", "recv", "--json", "--timeout", "1500ms"))...)
	want := aliceAt + ":while b is down 1 | " + aliceAt + ":while b is down 2"
	if got := strings.Join(texts(all), " | "); got != want {
		t.Fatalf("bob received %q, want %q", got, want)
	}
}

package main

import (
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestReceiptsOfflineAndKillE2E: bob is offline while alice sends; the
// server is killed (SIGKILL) around bob's delivery receipt and his read
// receipt, and bob reads while the server is down. Alice ends with every
// message read, each delivery and each read reported exactly once.
func TestReceiptsOfflineAndKillE2E(t *testing.T) {
	parallelE2E(t)
	n, a1, b1 := newMessagingNet(t)
	seen := map[string]bool{}
	first := sendID(t, a1, bobAddr, "before")
	recvReceipts(t, b1)
	evs, _ := recvReceipts(t, a1)
	if got := receiptIDs(t, evs, "delivered", bobAddr, seen); !slices.Equal(got, []string{first}) {
		t.Fatalf("delivery receipts %v, want [%s]", got, first)
	}

	// Bob offline: alice sends, the server dies and comes back.
	ids := []string{first}
	for _, text := range []string{"o1", "o2", "o3"} {
		ids = append(ids, sendID(t, a1, bobAddr, text))
	}
	n.killAndRestart(t)
	if _, texts := recvReceipts(t, b1); strings.Join(texts, ",") != "o1,o2,o3" {
		t.Fatalf("bob received %v after the crash", texts)
	}
	n.killAndRestart(t)

	// Bob reads while the server is down: the receipt stays queued.
	n.srv.stop(t, syscall.SIGKILL)
	if r := b1.chat(t, "", "read", aliceAddr, "--timeout", "2s"); r.code == 0 || !strings.Contains(r.stderr, "stays queued") {
		t.Fatalf("read with the server down: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := b1.must(t, "", "outbox", "list"); !strings.Contains(out, "(receipt)") {
		t.Fatalf("bob's outbox holds no receipt:\n%s", out)
	}
	n.srv = startServe(t, n.dir, nil, "--dir", n.dir)
	b1.must(t, "", "recv", "--timeout", "1s") // sends what is queued
	n.killAndRestart(t)

	evs, _ = recvReceipts(t, a1)
	if got := receiptIDs(t, evs, "delivered", bobAddr, seen); !slices.Equal(got, sorted(ids[1:]...)) {
		t.Fatalf("delivery receipts %v, want %v (%+v)", got, sorted(ids[1:]...), evs)
	}
	if got := receiptIDs(t, evs, "read", bobAddr, seen); !slices.Equal(got, sorted(ids...)) {
		t.Fatalf("read receipts %v, want %v (%+v)", got, sorted(ids...), evs)
	}
	for _, id := range ids {
		checkStatus(t, a1, bobAddr, id, "read", []string{bobAddr}, []string{bobAddr})
	}
	// Nothing is reported again, and reading again sends nothing.
	b1.must(t, "", "read", aliceAddr)
	if evs, _ := recvReceipts(t, a1); len(evs) != 0 {
		t.Fatalf("receipts after everything was read: %+v", evs)
	}
	if out := strings.TrimSpace(b1.must(t, "", "outbox", "list", "--json")); out != "" {
		t.Fatalf("bob's outbox is not empty:\n%s", out)
	}
}

// TestReceiptsOffE2E: bob turns read receipts off, then links a second
// device, which starts with his settings, and turns typing off there,
// which reaches the first. Then neither does alice see bob's reads nor bob
// alice's, in their 1:1, while deliveries still show; bob's read on one
// device is a read on the other. Typing off sends nothing.
func TestReceiptsOffE2E(t *testing.T) {
	parallelE2E(t)
	n, a1, b1 := newMessagingNet(t)
	x1 := sendID(t, a1, bobAddr, "x1")
	recvReceipts(t, b1)
	if out := keyValues(b1.must(t, "", "settings", "read-receipts", "off")); out["read-receipts"] != "off" {
		t.Fatalf("settings read-receipts off printed %v", out)
	}
	b2 := newProfile(t, "bob")
	linkDevice(t, n, b2, b1)
	b2.must(t, "", "recv", "--timeout", "1500ms")
	if set := keyValues(b2.must(t, "", "settings")); set["read-receipts"] != "off" || set["typing"] != "on" {
		t.Fatalf("bob's new device has settings %v, want read-receipts off", set)
	}
	b2.must(t, "", "settings", "typing", "off")
	if _, texts := recvReceipts(t, b1); len(texts) != 0 {
		t.Fatalf("bob's settings printed messages %v", texts)
	}
	if set := keyValues(b1.must(t, "", "settings")); set["read-receipts"] != "off" || set["typing"] != "off" {
		t.Fatalf("bob's first device has settings %v, want both off", set)
	}
	if set := keyValues(a1.must(t, "", "settings")); set["read-receipts"] != "on" || set["typing"] != "on" {
		t.Fatalf("alice's settings %v, want the defaults", set)
	}

	// Bob reads: alice sees delivery only; bob's other device learns it,
	// for x2 (sent after it was linked) and x1 (in the history archive the
	// approving device sent it).
	x2 := sendID(t, a1, bobAddr, "x2")
	recvReceipts(t, b2)
	recvReceipts(t, b1)
	b1.must(t, "", "read", aliceAddr)
	recvReceipts(t, a1)
	checkStatus(t, a1, bobAddr, x1, "delivered", []string{bobAddr}, nil)
	checkStatus(t, a1, bobAddr, x2, "delivered", []string{bobAddr}, nil)
	evs, _ := recvReceipts(t, b2)
	if got, want := receiptIDs(t, evs, "read", bobAddr, map[string]bool{}), sorted(x1, x2); !slices.Equal(got, want) {
		t.Fatalf("bob's other device saw his reads of %v (%+v), want %v", got, evs, want)
	}

	// Alice reads bob's message: bob does not see it, on either device.
	y1 := sendID(t, b1, aliceAddr, "y1")
	recvReceipts(t, a1)
	a1.must(t, "", "read", bobAddr)
	for _, p := range []*profile{b1, b2} {
		recvReceipts(t, p)
		checkStatus(t, p, aliceAddr, y1, "delivered", []string{aliceAddr}, nil)
	}

	if r := b1.chat(t, "", "typing", aliceAddr); r.code != 0 || !strings.Contains(r.stderr, "typing indicators are off") {
		t.Fatalf("typing with typing off: exit %d, stderr %q", r.code, r.stderr)
	}
	// Bad input is refused and changes nothing.
	for _, args := range [][]string{{"settings", "typing", "maybe"}, {"settings", "colour", "on"}, {"read", "nobody@localhost"}, {"read", aliceAddr, "--up-to", "nosuchid"}} {
		if r := b1.chat(t, "", args...); r.code == 0 || r.stderr == "" {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if set := keyValues(b1.must(t, "", "settings")); set["read-receipts"] != "off" || set["typing"] != "off" {
		t.Fatalf("settings after bad input %v", set)
	}
}

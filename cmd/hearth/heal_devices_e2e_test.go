package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/client/store"
)

// recoveryLogin logs p in as a new device of its user with the recovery
// key that first's login printed (kv), so it is listed at once.
func recoveryLogin(t *testing.T, n *chatNet, p *profile, recoveryKey string) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "recovery")
	if err := os.WriteFile(keyFile, []byte(recoveryKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := p.must(t, password(p.user), p.loginArgs(n, "--recovery-key-file", keyFile)...)
	if kv := keyValues(out); kv["status"] != "active" {
		t.Fatalf("recovery login output %q", out)
	}
}

// newHealNet is newMessagingNet with alice's recovery key kept.
func newHealNet(t *testing.T) (n *chatNet, a1, b1 *profile, recoveryKey string) {
	t.Helper()
	n = newChatNet(t, "alice", "bob")
	a1, b1 = newProfile(t, "alice"), newProfile(t, "bob")
	kv := keyValues(a1.must(t, password("alice"), a1.loginArgs(n)...))
	b1.must(t, password("bob"), b1.loginArgs(n)...)
	if kv["recovery-key"] == "" {
		t.Fatalf("first login printed no recovery key: %v", kv)
	}
	return n, a1, b1, kv["recovery-key"]
}

// TestHealRevokedDeviceBeforePeerSync is case 2 of "conversations never
// break": alice links alice2, sends m2, revokes alice2 and sends m3 before
// bob has synced. bob reads m2 and m3 (the commit that added alice2 is
// processed although alice's current list no longer has it), and the
// conversation goes on both ways; bob's outbox is not wedged.
func TestHealRevokedDeviceBeforePeerSync(t *testing.T) {
	parallelE2E(t)
	n, a1, b1, rk := newHealNet(t)
	a1.must(t, "", "send", bobAddr, "m1")
	expectRecv(t, b1, aliceAddr+":m1")

	a2 := newProfile(t, "alice")
	recoveryLogin(t, n, a2, rk)
	a1.must(t, "", "send", bobAddr, "m2")
	var a2dev string
	for _, d := range devices(t, a1) {
		if !d.This {
			a2dev = d.Device
		}
	}
	a1.must(t, "", "device", "revoke", a2dev)
	a1.must(t, "", "send", bobAddr, "m3")

	r := b1.chatWithin(t, 60*time.Second, "recv", "--json", "--timeout", "3s")
	if r.code != 0 {
		t.Fatalf("bob recv: exit %d\n%s", r.code, r.stderr)
	}
	if got := strings.Join(texts(parseMsgs(t, r.stdout)), " | "); got != aliceAddr+":m2 | "+aliceAddr+":m3" {
		t.Fatalf("bob recv = %q, want m2 and m3", got)
	}
	// Later messages both ways.
	b1.must(t, "", "send", aliceAddr, "b1")
	expectRecvContains(t, a1, "b1")
	a1.must(t, "", "send", bobAddr, "m4")
	expectRecvContains(t, b1, "m4")
	b1.must(t, "", "send", aliceAddr, "b2")
	expectRecvContains(t, a1, "b2")
	if ob := outboxItems(t, b1); len(ob) != 0 {
		t.Errorf("bob's outbox after the exchange holds %d items", len(ob))
	}
}

// TestHealNewDeviceEarlySend is case 4: a new device sends to a
// conversation before another device of its user has added it. The
// message is not refused for good: it arrives.
func TestHealNewDeviceEarlySend(t *testing.T) {
	parallelE2E(t)
	n, a1, b1, rk := newHealNet(t)
	out := strings.Split(strings.TrimSpace(a1.must(t, "", "group", "create", "team", "--members", bobAddr)), "\n")
	id := out[len(out)-1]
	b1.must(t, "", "recv", "--timeout", "1s")
	a1.must(t, "", "send", id, "hello team")
	expectRecvContains(t, b1, "hello team")

	a2 := newProfile(t, "alice")
	recoveryLogin(t, n, a2, rk)
	a2.must(t, "", "recv", "--timeout", "1s")
	r := a2.chatWithin(t, 60*time.Second, "send", id, "early from alice2")
	t.Logf("early send: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	// Whether or not the first attempt got through, the message arrives
	// once alice's first device has synced, and nothing is left failed.
	a1.must(t, "", "recv", "--timeout", "2s")
	if r.code != 0 {
		a2.chatWithin(t, 60*time.Second, "recv", "--timeout", "2s")
	}
	expectRecvContains(t, b1, "early from alice2")
	if ob := outboxItems(t, a2); len(ob) != 0 {
		t.Errorf("alice2's outbox holds %d items", len(ob))
	}
	a2.must(t, "", "send", id, "later from alice2")
	expectRecvContains(t, b1, "later from alice2")
}

// outboxItems reads what p's outbox holds (queued, in flight or failed).
func outboxItems(t *testing.T, p *profile) []store.OutboxItem {
	t.Helper()
	c := openClient(t, p)
	defer c.Close()
	var items []store.OutboxItem
	if err := c.Store().View(func(tx *store.Tx) (err error) { items, err = tx.Outbox(); return }); err != nil {
		t.Fatal(err)
	}
	return items
}

// recvLines runs recv --json on p once and returns its lines: messages
// and events.
func recvLines(t *testing.T, p *profile) []map[string]any {
	t.Helper()
	r := p.chatWithin(t, 60*time.Second, "recv", "--json", "--timeout", "3s")
	if r.code != 0 {
		t.Fatalf("recv: exit %d\n%s", r.code, r.stderr)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("recv line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// copyDir copies a profile folder (no process may be using it).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
}

// TestHealRestoredBackup forces a desync: bob's profile is restored from a
// copy taken before several commits. bob finds it cannot follow, rejoins
// by itself, reports how many messages it could not decrypt, and sends
// and receives again.
func TestHealRestoredBackup(t *testing.T) {
	parallelE2E(t)
	n, a1, b1, rk := newHealNet(t)
	a1.must(t, "", "send", bobAddr, "m1")
	expectRecv(t, b1, aliceAddr+":m1")
	backup := filepath.Join(t.TempDir(), "bob-backup")
	copyDir(t, b1.dir, backup)

	// Two commits bob's backup never saw (alice2 added, then removed),
	// each followed by bob before the next.
	a2 := newProfile(t, "alice")
	recoveryLogin(t, n, a2, rk)
	a1.must(t, "", "send", bobAddr, "m2")
	expectRecv(t, b1, aliceAddr+":m2")
	var a2dev string
	for _, d := range devices(t, a1) {
		if !d.This {
			a2dev = d.Device
		}
	}
	a1.must(t, "", "device", "revoke", a2dev)
	a1.must(t, "", "send", bobAddr, "m3")
	expectRecv(t, b1, aliceAddr+":m3")
	b1.must(t, "", "send", aliceAddr, "b1")
	expectRecvContains(t, a1, "b1")

	// bob's profile goes back to the copy.
	if err := os.RemoveAll(b1.dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, b1.dir)
	a1.must(t, "", "send", bobAddr, "m4")

	var undecryptable float64
	var texts []string
	for _, m := range recvLines(t, b1) {
		switch m["event"] {
		case "undecryptable":
			if m["conversation"] == "" || m["reason"] == "" {
				t.Errorf("undecryptable event lacks fields: %v", m)
			}
			undecryptable += m["count"].(float64)
		case nil:
			texts = append(texts, m["text"].(string))
		}
	}
	// m4, and alice's delivery receipt of b1: a device that cannot
	// decrypt cannot tell a receipt from a message (docs/receipts.md).
	if undecryptable != 2 || len(texts) != 0 {
		t.Fatalf("restored bob: %v undecryptable, messages %q; want m4 and alice's receipt reported undecryptable", undecryptable, texts)
	}
	// In step again, both ways.
	b1.must(t, "", "send", aliceAddr, "b2")
	expectRecvContains(t, a1, "b2")
	a1.must(t, "", "send", bobAddr, "m5")
	expectRecvContains(t, b1, "m5")
	b1.must(t, "", "send", aliceAddr, "b3")
	expectRecvContains(t, a1, "b3")
	if ob := outboxItems(t, b1); len(ob) != 0 {
		t.Errorf("bob's outbox holds %d items", len(ob))
	}
}

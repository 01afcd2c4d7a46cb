package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/certs"
)

// TestChatHistoryOnNewDevice: bob@b.example talks with alice@a.example
// (hubbed at a, the other server) and with carol@b.example (hubbed at b);
// his new device, approved with history on (the default), shows the same
// history of both conversations as his first device did at the link, and
// then goes on live. A device approved with --no-history starts empty.
func TestChatHistoryOnNewDevice(t *testing.T) {
	parallelE2E(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	pinPair(t, a, b)
	mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	mustHearth(t, password("carol"), "admin", "--dir", b.dir, "user", "add", "carol", "--password-stdin")
	const aliceAt, bobAt, carolAt = "alice@a.example", "bob@b.example", "carol@b.example"
	bCA := filepath.Join(b.dir, certs.CAFile)
	bobLogin := []string{"login", bobAt, "--server", b.listen, "--ca", bCA, "--password-stdin"}
	alice, bob, carol := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol")
	alice.must(t, password("alice"), "login", aliceAt, "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), bobLogin...)
	carol.must(t, password("carol"), "login", carolAt, "--server", b.listen, "--ca", bCA, "--password-stdin")

	alice.must(t, "", "send", bobAt, "hello bob, from a")
	recvUntil(t, bob, aliceAt, "hello bob, from a")
	bob.must(t, "", "send", aliceAt, "hi alice")
	recvUntil(t, alice, bobAt, "hi alice")
	bob.must(t, "", "send", carolAt, "carol, on our server")
	recvUntil(t, carol, bobAt, "carol, on our server")
	carol.must(t, "", "send", bobAt, "yes bob")
	recvUntil(t, bob, carolAt, "yes bob")

	histAlice := parseMsgs(t, bob.must(t, "", "history", aliceAt, "--json"))
	histCarol := parseMsgs(t, bob.must(t, "", "history", carolAt, "--json"))
	if len(histAlice) < 2 || len(histCarol) < 2 {
		t.Fatalf("bob's history: %v / %v", texts(histAlice), texts(histCarol))
	}
	if !strings.HasSuffix(histAlice[0].Conversation, "@a.example") || !strings.HasSuffix(histCarol[0].Conversation, "@b.example") {
		t.Fatalf("conversations hubbed at %q and %q, want a and b", histAlice[0].Conversation, histCarol[0].Conversation)
	}

	bob2 := newProfile(t, "bob")
	code, wait := startPendingLogin(t, bob2, bobLogin...)
	r := bob.chat(t, "", "device", "approve", code, "--history-days", "30")
	if r.code != 0 || !strings.Contains(r.stdout, "approved: ") {
		t.Errorf("approve: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "history: 4 messages of 2 conversations") || !strings.Contains(r.stderr, "history: uploaded 100%") {
		t.Errorf("approve did not report the history it sent: %q", r.stderr)
	}
	if loginErr := wait(); !strings.Contains(loginErr, "history: downloaded 100%") || !strings.Contains(loginErr, "history: imported 4 messages of 2 conversations") {
		t.Errorf("the new device did not report the history it imported: %q", loginErr)
	}

	// Before receiving anything live, the new device holds the history
	// of both conversations, by id and by peer, as bob's first device had it.
	for peer, h := range map[string][]chatMsg{aliceAt: histAlice, carolAt: histCarol} {
		sameMessages(t, parseMsgs(t, bob2.must(t, "", "history", h[0].Conversation, "--json")), h)
		sameMessages(t, parseMsgs(t, bob2.must(t, "", "history", peer, "--json")), h)
	}

	// Live messages continue after the imported ones, and by address.
	alice.must(t, "", "send", bobAt, "after the link")
	recvUntil(t, bob2, aliceAt, "after the link")
	carol.must(t, "", "send", bobAt, "carol after the link")
	recvUntil(t, bob2, carolAt, "carol after the link")
	for peer, h := range map[string][]chatMsg{aliceAt: histAlice, carolAt: histCarol} {
		got := parseMsgs(t, bob2.must(t, "", "history", peer, "--json"))
		if len(got) <= len(h) {
			t.Fatalf("bob2's history with %s: %v, want %v then live", peer, texts(got), texts(h))
		}
		sameMessages(t, got[:len(h)], h)
		if last := got[len(got)-1]; !strings.HasSuffix(last.Text, "after the link") {
			t.Errorf("bob2's last message with %s: %+v", peer, last)
		}
	}

	// --no-history: the third device starts without the old messages.
	bob3 := newProfile(t, "bob")
	if _, err := linkProfile(bob3, 60*time.Second, func(code string) error {
		if r := bob.chat(t, "", "device", "approve", code, "--no-history"); r.code != 0 || strings.Contains(r.stderr, "history:") {
			t.Errorf("approve --no-history: exit %d\n%s", r.code, r.stderr)
		}
		return nil
	}, bobLogin...); err != nil {
		t.Fatal(err)
	}
	if got := parseMsgs(t, bob3.must(t, "", "history", histAlice[0].Conversation, "--json")); len(got) != 0 {
		t.Errorf("--no-history device holds %v", texts(got))
	}
	a.srv.stop(t, os.Interrupt)
	b.srv.stop(t, os.Interrupt)
}

// sameMessages fails unless got and want are the same messages in order.
func sameMessages(t *testing.T, got, want []chatMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("history %v, want %v", texts(got), texts(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("history[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// startPendingLogin starts `chat login` of p as a pending device and
// returns its link code, and a wait that returns the login's stderr once it
// ended with status: active (it fails the test otherwise).
func startPendingLogin(t *testing.T, p *profile, loginArgs ...string) (string, func() string) {
	t.Helper()
	cmd := exec.Command(hearthBin, append([]string{"chat", "--profile", p.dir}, loginArgs...)...)
	cmd.Stdin = strings.NewReader(password(p.user))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var code string
	var out []string
	for code == "" && lines.Scan() {
		out = append(out, lines.Text())
		if v, ok := strings.CutPrefix(lines.Text(), "link-code: "); ok {
			code = v
		}
	}
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
			out = append(out, lines.Text())
		}
		done <- cmd.Wait()
	}()
	if code == "" {
		cmd.Process.Kill()
		<-done
		t.Fatalf("pending login printed no link-code: %q\n%s", out, stderr.String())
	}
	return code, func() string {
		t.Helper()
		select {
		case err := <-done:
			if err != nil || keyValues(strings.Join(out, "\n"))["status"] != "active" {
				t.Fatalf("pending login: %v, %q\n%s", err, out, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("pending login did not finish after approval:\n%s", stderr.String())
		}
		return stderr.String()
	}
}

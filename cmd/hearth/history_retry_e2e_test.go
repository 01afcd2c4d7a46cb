package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/cmd/hearth/internal/impair"
	"hearth/keys/testutil"
)

// TestChatHistoryImportRetried: alice's new device reaches the server
// through a relay slowed to 32 KB/s, so that the ~450 KB history archive
// her first device sends takes seconds to download. The new device's
// login is killed in the middle of that download (SIGKILL), then the
// server too. The device is active; with the server down, `history`
// says the older messages are not imported yet. Once the server is back
// (same folder, same port), a `recv` imports the archive, saying so, and
// the new device's history with bob is the first device's, each message
// once; later commands have nothing left to import.
func TestChatHistoryImportRetried(t *testing.T) {
	parallelE2E(t)
	n, alice, bob := newMessagingNet(t)
	relay := newRelayPair(t, n.srv.addr)
	big := strings.Repeat("history worth keeping. ", 150<<10/23)
	for i := range 3 {
		bob.must(t, big+string(rune('a'+i))+"\n", "send", aliceAddr, "-")
	}
	alice.must(t, "", "send", bobAddr, "got them")
	alice.must(t, "", "recv", "--timeout", "2s")
	want := parseMsgs(t, alice.must(t, "", "history", bobAddr, "--json"))
	if len(want) != 4 {
		t.Fatalf("alice's history with bob: %d messages", len(want))
	}

	alice2 := newProfile(t, "alice")
	viaRelay := &chatNet{ca: n.ca, srv: &server{addr: relay.addr}}
	login := exec.Command(hearthBin, append([]string{"chat", "--profile", alice2.dir}, alice2.loginArgs(viaRelay, "--no-qr")...)...)
	login.Stdin = strings.NewReader(password("alice"))
	var stderr lockedBuffer
	login.Stderr = &stderr
	stdout, err := login.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	codes := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if v, ok := strings.CutPrefix(lines.Text(), "link-code: "); ok {
				codes <- v
			}
		}
		done <- login.Wait()
	}()
	var code string
	select {
	case code = <-codes:
	case <-time.After(30 * time.Second):
		login.Process.Kill()
		t.Fatalf("no link code: %s", stderr.String())
	}
	slow := impair.Config{RateBytesPerSec: 32 << 10}
	relay.set(t, slow, slow)
	if r := alice.chat(t, "", "device", "approve", code); r.code != 0 || !strings.Contains(r.stderr, "history: uploaded 100%") {
		login.Process.Kill()
		t.Fatalf("approve: exit %d\n%s", r.code, r.stderr)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if !strings.Contains(stderr.String(), "history: downloading ") {
			return fmt.Errorf("the new device has not started the download: %q", stderr.String())
		}
		return nil
	})
	login.Process.Signal(syscall.SIGKILL)
	<-done
	if s := stderr.String(); strings.Contains(s, "history: imported") {
		t.Fatalf("the import finished before the kill (the relay did not slow it): %q", s)
	}
	n.srv.stop(t, syscall.SIGKILL)
	relay.set(t, impair.Config{}, impair.Config{})

	r := alice2.chat(t, "", "history", bobAddr, "--json")
	if r.code != 0 || len(parseMsgs(t, r.stdout)) != 0 || !strings.Contains(r.stderr, "hearth: history: the messages from before this device's link are not imported yet") {
		t.Fatalf("history with the server down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	noGoChain(t, "history pending", r.stderr)

	n.srv = startServe(t, n.dir, nil, "--dir", n.dir)
	var imported string
	testutil.WaitFor(t, 60*time.Second, func() error {
		r := alice2.chat(t, "", "recv", "--timeout", "1s")
		if !strings.Contains(r.stderr, "history: imported 4 messages of 1 conversation") {
			return fmt.Errorf("recv after the restart: exit %d, stderr %q", r.code, r.stderr)
		}
		imported = r.stderr
		return nil
	})
	if !strings.Contains(imported, "history: importing the history the approving device sent (attempt 2)") {
		t.Errorf("the retry did not say what it does: %q", imported)
	}
	r = alice2.chat(t, "", "history", bobAddr, "--json")
	if r.code != 0 || strings.Contains(r.stderr, "history:") {
		t.Errorf("history after the import: exit %d, stderr %q", r.code, r.stderr)
	}
	sameMessages(t, parseMsgs(t, r.stdout), want)
	if r := alice2.chat(t, "", "recv", "--timeout", "1s"); strings.Contains(r.stderr, "history") {
		t.Errorf("a later recv still imports: %q", r.stderr)
	}
}

// TestChatHistoryLoginImportFails: the server cannot read the archive
// when alice's new device fetches it (its media file moved aside while
// the waiting login was stopped). The login still ends active, prints
// "history: pending" and says the older messages are not imported yet,
// with the cause; once the file is back, a later recv imports them.
func TestChatHistoryLoginImportFails(t *testing.T) {
	parallelE2E(t)
	n, alice, bob := newMessagingNet(t)
	bob.must(t, "", "send", aliceAddr, "from before the link")
	alice.must(t, "", "recv", "--timeout", "2s")
	alice.must(t, "", "send", bobAddr, "also from before")
	want := parseMsgs(t, alice.must(t, "", "history", bobAddr, "--json"))

	alice2 := newProfile(t, "alice")
	login := exec.Command(hearthBin, append([]string{"chat", "--profile", alice2.dir}, alice2.loginArgs(n, "--no-qr")...)...)
	login.Stdin = strings.NewReader(password("alice"))
	var stderr, stdoutBuf lockedBuffer
	login.Stderr = &stderr
	stdout, err := login.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	codes := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			stdoutBuf.Write([]byte(lines.Text() + "\n"))
			if v, ok := strings.CutPrefix(lines.Text(), "link-code: "); ok {
				codes <- v
			}
		}
		done <- login.Wait()
	}()
	var code string
	select {
	case code = <-codes:
	case <-time.After(30 * time.Second):
		login.Process.Kill()
		t.Fatalf("no link code: %s", stderr.String())
	}
	login.Process.Signal(syscall.SIGSTOP)
	// The approver waits for the stopped device's KeyPackages to add it
	// to the conversation (up to 20 s): --timeout ends that wait early;
	// the device is added by the next send instead.
	if r := alice.chat(t, "", "device", "approve", code, "--timeout", "5s"); r.code != 0 {
		login.Process.Kill()
		t.Fatalf("approve: exit %d\n%s", r.code, r.stderr)
	}
	files, _ := filepath.Glob(filepath.Join(n.dir, "media", "complete", "*"))
	if len(files) != 1 {
		login.Process.Kill()
		t.Fatalf("media files after the approval: %v", files)
	}
	if err := os.Rename(files[0], files[0]+".aside"); err != nil {
		t.Fatal(err)
	}
	login.Process.Signal(syscall.SIGCONT)
	t0 := time.Now()
	select {
	case err := <-done:
		kv := keyValues(stdoutBuf.String())
		if err != nil || kv["status"] != "active" || kv["history"] != "pending" ||
			!strings.Contains(stderr.String(), "hearth: history: the messages from before this device's link are not imported yet (last try: the server could not serve it (internal error); 1 attempt)") {
			t.Fatalf("login: %v, stdout %q, stderr %q", err, stdoutBuf.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		login.Process.Kill()
		t.Fatalf("login did not end: %s", stderr.String())
	}
	t0 = time.Now()
	noGoChain(t, "login with the history pending", stderr.String())
	if err := os.Rename(files[0]+".aside", files[0]); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		r := alice2.chat(t, "", "recv", "--timeout", "1s")
		if !strings.Contains(r.stderr, "history: imported 2 messages of 1 conversation") {
			return fmt.Errorf("recv: exit %d, stderr %q", r.code, r.stderr)
		}
		return nil
	})
	t.Logf("imported %v after the file was back", time.Since(t0))
	sameMessages(t, parseMsgs(t, alice2.must(t, "", "history", bobAddr, "--json")), want)
}

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"hearth/client/store"
)

// keyringSession starts a private D-Bus session bus and GNOME Keyring's
// Secret Service on it, with an unlocked login keyring in a fresh HOME,
// and returns the environment that reaches it. Both stop with the test.
func keyringSession(t *testing.T) []string {
	t.Helper()
	for _, bin := range []string{"dbus-daemon", "gnome-keyring-daemon"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("the OS keyring test needs %s (apt-get install gnome-keyring; .ci/run installs it)", bin)
		}
	}
	home := t.TempDir()
	run := filepath.Join(home, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+run, "XDG_DATA_HOME="+filepath.Join(home, "data"))
	bus := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1", "--address=unix:path="+filepath.Join(home, "bus"))
	bus.Env = env
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	addr := strings.TrimSpace(line)
	env = append(env, "DBUS_SESSION_BUS_ADDRESS="+addr)
	gk := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	gk.Env = env
	gk.Stdin = strings.NewReader("keyring-login-password")
	var gkErr bytes.Buffer
	gk.Stderr = &gkErr
	if err := gk.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gk.Process.Kill(); gk.Wait() })
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to the test bus: %v", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var owned bool
		if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.secrets").Store(&owned); err != nil {
			t.Fatal(err)
		}
		if owned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gnome-keyring-daemon did not register the Secret Service: %s", gkErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return []string{"DBUS_SESSION_BUS_ADDRESS=" + addr, "HEARTH_KEYRING="}
}

// TestProfileKeyringE2E: where an OS keyring is reachable (a real GNOME
// Keyring on a private D-Bus session here), a new profile is encrypted at
// rest with a random key kept in the keyring and every command opens it
// without a passphrase; a session without the keyring (no bus, or
// HEARTH_KEYRING=off) is refused with a clear error and changes nothing;
// HEARTH_KEYRING=off keeps new profiles unencrypted; `chat profile encrypt
// --keyring` converts a plain profile.
func TestProfileKeyringE2E(t *testing.T) {
	parallelE2E(t)
	kr := keyringSession(t)
	noBus := []string{"DBUS_SESSION_BUS_ADDRESS="}
	n := newChatNet(t, "alice", "bob", "carol")
	a, b, c := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol")
	chat := func(p *profile, env []string, stdin string, args ...string) result {
		t.Helper()
		return hearth(t, env, stdin, append([]string{"chat", "--profile", p.dir}, args...)...)
	}
	must := func(p *profile, env []string, stdin string, args ...string) string {
		t.Helper()
		r := chat(p, env, stdin, args...)
		if r.code != 0 {
			t.Fatalf("chat %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	must(a, kr, password("alice"), a.loginArgs(n)...)
	must(b, noBus, password("bob"), b.loginArgs(n)...)
	must(c, append([]string{kr[0]}, "HEARTH_KEYRING=off"), password("carol"), c.loginArgs(n)...)
	for _, tc := range []struct {
		p    *profile
		env  []string
		want string
	}{{a, kr, "keyring"}, {b, noBus, "none"}, {c, noBus, "none"}} {
		if got := keyValues(must(tc.p, tc.env, "", "profile", "status"))["protection"]; got != tc.want {
			t.Errorf("%s's profile protection %q, want %q", tc.p.user, got, tc.want)
		}
	}

	must(b, noBus, "", "send", "alice@localhost", "KEYRING-HELLO-FROM-BOB")
	if msgs := parseMsgs(t, must(a, kr, "", "recv", "--json", "--timeout", "5s")); len(msgs) != 1 || msgs[0].Text != "KEYRING-HELLO-FROM-BOB" {
		t.Fatalf("alice got %+v", msgs)
	}
	must(a, kr, "", "send", "bob@localhost", "KEYRING-REPLY-FROM-ALICE")
	fileA := filepath.Join(a.dir, store.FileName)
	rawA, err := os.ReadFile(fileA)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rawA, []byte("KEYRING-HELLO-FROM-BOB")) || bytes.Contains(rawA, []byte("KEYRING-REPLY-FROM-ALICE")) {
		t.Fatal("alice's keyring-encrypted profile holds a message in plaintext")
	}
	before := sha256.Sum256(rawA)
	for name, env := range map[string][]string{
		"no session bus":     noBus,
		"HEARTH_KEYRING=off": {kr[0], "HEARTH_KEYRING=off"},
	} {
		r := chat(a, env, "", "history", "bob@localhost")
		if r.code == 0 || !strings.Contains(r.stderr, "OS keyring") || strings.Contains(r.stderr, "KEYRING-HELLO") {
			t.Errorf("%s: exit %d, stderr %q, want a refusal naming the OS keyring", name, r.code, r.stderr)
		}
	}
	if r := chat(a, kr, "wrong\n", "--passphrase-stdin", "history", "bob@localhost"); r.code == 0 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("a passphrase for a keyring profile: exit %d, %q", r.code, r.stderr)
	}
	if raw, _ := os.ReadFile(fileA); sha256.Sum256(raw) != before {
		t.Error("a refused command changed the profile")
	}
	if out := must(a, kr, "", "history", "bob@localhost"); !strings.Contains(out, "KEYRING-HELLO-FROM-BOB") || !strings.Contains(out, "KEYRING-REPLY-FROM-ALICE") {
		t.Fatalf("alice's history through the keyring: %q", out)
	}

	// Bob's plain profile, converted.
	if r := chat(b, noBus, "", "profile", "encrypt", "--keyring"); r.code == 0 || !strings.Contains(r.stderr, "no OS keyring") {
		t.Errorf("encrypt --keyring without a keyring: exit %d, %q", r.code, r.stderr)
	}
	if out := must(b, kr, "", "profile", "encrypt", "--keyring"); keyValues(out)["protection"] != "keyring" {
		t.Fatalf("profile encrypt --keyring printed %q", out)
	}
	if raw, _ := os.ReadFile(filepath.Join(b.dir, store.FileName)); bytes.Contains(raw, []byte("KEYRING-HELLO-FROM-BOB")) {
		t.Fatal("bob's profile holds a message in plaintext after encrypt --keyring")
	}
	if msgs := parseMsgs(t, must(b, kr, "", "recv", "--json", "--timeout", "5s")); len(msgs) != 1 || msgs[0].Text != "KEYRING-REPLY-FROM-ALICE" {
		t.Fatalf("bob got %+v", msgs)
	}
	if r := chat(b, noBus, "", "history", "alice@localhost"); r.code == 0 || !strings.Contains(r.stderr, "OS keyring") {
		t.Errorf("bob's keyring profile without the keyring: exit %d, %q", r.code, r.stderr)
	}
}

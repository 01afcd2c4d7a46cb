package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hearth/client/store"
)

// TestProfileEncryption: a profile logged in with --passphrase-stdin is
// encrypted at rest: messages it receives are not readable in its file,
// and every command needs the passphrase (HEARTH_PASSPHRASE_FILE or
// --passphrase-stdin); without it or with a wrong one the command fails
// with a clear error and the profile is not changed. An unencrypted
// profile keeps working and `chat profile encrypt` encrypts it.
func TestProfileEncryption(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice", "bob")
	a, b := newProfile(t, "alice"), newProfile(t, "bob")
	const pass = "alice's long passphrase"
	a.must(t, strings.TrimSuffix(password("alice"), "\n")+"\n"+pass+"\n", append([]string{"--passphrase-stdin"}, a.loginArgs(n)...)...)
	b.must(t, password("bob"), b.loginArgs(n)...)
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withPass := []string{passphraseFileEnv + "=" + passFile}
	chatA := func(env []string, stdin string, args ...string) result {
		t.Helper()
		return hearth(t, env, stdin, append([]string{"chat", "--profile", a.dir}, args...)...)
	}
	if r := chatA(withPass, "", "send", "bob@localhost", "HELLO-FROM-ALICE"); r.code != 0 {
		t.Fatalf("send with the passphrase file: %+v", r)
	}
	if msgs := parseMsgs(t, b.must(t, "", "recv", "--json", "--timeout", "5s")); len(msgs) != 1 || msgs[0].Text != "HELLO-FROM-ALICE" {
		t.Fatalf("bob got %+v", msgs)
	}
	b.must(t, "", "send", "alice@localhost", "REPLY-TO-ALICE")
	r := chatA(nil, pass+"\n", "--passphrase-stdin", "recv", "--json", "--timeout", "5s")
	if r.code != 0 {
		t.Fatalf("recv with --passphrase-stdin: %+v", r)
	}
	if msgs := parseMsgs(t, r.stdout); len(msgs) != 1 || msgs[0].Text != "REPLY-TO-ALICE" {
		t.Fatalf("alice got %+v", msgs)
	}
	fileA := filepath.Join(a.dir, store.FileName)
	rawA, err := os.ReadFile(fileA)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rawA, []byte("REPLY-TO-ALICE")) || bytes.Contains(rawA, []byte("HELLO-FROM-ALICE")) {
		t.Fatal("alice's encrypted profile holds a message in plaintext")
	}
	before := sha256.Sum256(rawA)
	for name, tc := range map[string]struct {
		env   []string
		stdin string
		args  []string
		want  string
	}{
		"no passphrase":    {nil, "", nil, "is encrypted"},
		"wrong passphrase": {nil, "wrong\n", []string{"--passphrase-stdin"}, "wrong passphrase"},
	} {
		r := chatA(tc.env, tc.stdin, append(tc.args, "history", "bob@localhost")...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", name, r.code, r.stderr, tc.want)
		}
	}
	if raw, _ := os.ReadFile(fileA); sha256.Sum256(raw) != before {
		t.Error("a refused command changed the profile")
	}

	// Bob's unencrypted profile: encrypted later.
	fileB := filepath.Join(b.dir, store.FileName)
	if raw, _ := os.ReadFile(fileB); !bytes.Contains(raw, []byte("HELLO-FROM-ALICE")) {
		t.Fatal("test setup: bob's plain profile does not hold the message")
	}
	if r := b.chat(t, "bob pass\n", "--passphrase-stdin", "history", "alice@localhost"); r.code == 0 || !strings.Contains(r.stderr, "not encrypted") {
		t.Errorf("passphrase for a plain profile: exit %d, %q", r.code, r.stderr)
	}
	if out := b.must(t, "bob pass\n", "--passphrase-stdin", "profile", "encrypt"); keyValues(out)["profile"] != "encrypted" {
		t.Fatalf("profile encrypt printed %q", out)
	}
	if raw, _ := os.ReadFile(fileB); bytes.Contains(raw, []byte("HELLO-FROM-ALICE")) {
		t.Fatal("bob's profile holds the message in plaintext after encrypting")
	}
	if out := b.must(t, "bob pass\n", "--passphrase-stdin", "history", "alice@localhost"); !strings.Contains(out, "HELLO-FROM-ALICE") {
		t.Fatalf("bob's history after encrypting: %q", out)
	}
	if r := b.chat(t, "", "history", "alice@localhost"); r.code == 0 || !strings.Contains(r.stderr, "is encrypted") {
		t.Errorf("encrypted profile without passphrase: exit %d, %q", r.code, r.stderr)
	}
}

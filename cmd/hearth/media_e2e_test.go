package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChatMediaE2E: alice sends a 1 MiB file to bob with the real binary;
// bob's recv --json shows the media object (without the key; "sha256" is
// the file's, as sha256sum prints it, "ciphertext_sha256" what the server
// stores), media get
// writes a byte-identical file on both of bob's devices, also after a
// server restart; unknown or text messages are refused.
func TestChatMediaE2E(t *testing.T) {
	parallelE2E(t)
	n, a1, b1 := newMessagingNet(t)
	b2 := newProfile(t, "bob")
	linkDevice(t, n, b2, b1)

	file := make([]byte, 1<<20)
	rand.Read(file)
	path := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	id := keyValues(a1.must(t, "", "send", bobAddr, "--file", path))["id"]
	if id == "" {
		t.Fatal("send --file printed no id")
	}
	type mediaMsg struct {
		ID    string         `json:"id"`
		From  string         `json:"from"`
		Media map[string]any `json:"media"`
	}
	for _, p := range []*profile{b1, b2} {
		out := strings.TrimSpace(p.must(t, "", "recv", "--json", "--timeout", "3s"))
		if strings.Count(out, "\n") != 0 {
			t.Fatalf("%s: want one message, got %s", p.dir, out)
		}
		parseMsgs(t, out) // the usual fields are all there
		var m mediaMsg
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		if m.ID != id || m.From != aliceAddr || m.Media == nil {
			t.Fatalf("%s received %s", p.dir, out)
		}
		if m.Media["name"] != "report.pdf" || m.Media["type"] != "application/pdf" || m.Media["size"] != float64(1<<20) ||
			m.Media["sha256"] != fmt.Sprintf("%x", sha256.Sum256(file)) || len(m.Media["ciphertext_sha256"].(string)) != 64 ||
			m.Media["ciphertext_sha256"] == m.Media["sha256"] || m.Media["id"] == "" {
			t.Fatalf("media object %v", m.Media)
		}
		if k, ok := m.Media["key"]; ok && k != "" {
			t.Fatalf("recv --json printed the file key: %s", out)
		}
		dst := filepath.Join(t.TempDir(), "got.pdf")
		kvs := keyValues(p.must(t, "", "media", "get", id, "--out", dst))
		if kvs["file"] != dst || kvs["size"] != "1048576" || kvs["sha256"] != m.Media["sha256"] {
			t.Fatalf("media get printed %v", kvs)
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, file) {
			t.Fatalf("%s: fetched file differs (%v)", p.dir, err)
		}
	}
	// The plain-text form names the file and the command to fetch it.
	if h := b1.must(t, "", "history", aliceAddr); !strings.Contains(h, `"report.pdf"`) || !strings.Contains(h, "media get "+id) {
		t.Fatalf("history text: %s", h)
	}
	// Alice's own history holds the file too; media survives a restart.
	n.restart(t)
	dst := filepath.Join(t.TempDir(), "again.pdf")
	a1.must(t, "", "media", "get", id, "--out", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, file) {
		t.Fatal("fetched file differs after a restart")
	}

	a1.must(t, "", "send", bobAddr, "plain text")
	msgs := expectRecv(t, b1, aliceAddr+":plain text")
	for _, bad := range []string{msgs[0].ID, "no-such-message"} {
		out := filepath.Join(t.TempDir(), "x")
		if r := b1.chat(t, "", "media", "get", bad, "--out", out); r.code == 0 {
			t.Fatalf("media get %s succeeded", bad)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("media get %s left a file: %v", bad, err)
		}
	}
	if r := a1.chat(t, "", "send", bobAddr, "text", "--file", path); r.code == 0 {
		t.Fatal("send with both a text and --file accepted")
	}
	if r := a1.chat(t, "", "send", bobAddr, "text", "--type", "a/b"); r.code == 0 {
		t.Fatal("--type without --file accepted")
	}
}

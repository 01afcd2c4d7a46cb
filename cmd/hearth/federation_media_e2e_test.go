package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"hearth/homeserver/certs"
)

// TestFederationMediaE2E: alice@a.example sends a file to bob@b.example;
// bob's device fetches it through its own server from a.example and
// writes a byte-identical file (two real servers, the real binary).
func TestFederationMediaE2E(t *testing.T) {
	skipShort(t)
	_, _, alice, bob := fedPair(t)

	file := make([]byte, 700_000)
	rand.Read(file)
	path := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	id := keyValues(alice.must(t, "", "send", "bob@b.example", "--file", path))["id"]
	if id == "" {
		t.Fatal("send --file printed no id")
	}
	expectRecv(t, bob, "alice@a.example:")
	dst := filepath.Join(t.TempDir(), "got.jpg")
	bob.must(t, "", "media", "get", id, "--out", dst)
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, file) {
		t.Fatalf("bob's copy differs from alice's file (%v)", err)
	}
}

// fedPair starts a.example and b.example peered with each other, with
// alice logged in on a and bob on b.
func fedPair(t *testing.T) (a, b *fedServer, alice, bob *profile) {
	t.Helper()
	a, b = newFedServer(t, "a.example"), newFedServer(t, "b.example")
	a.admin(t, "", "federation", "peer", "add", "b.example", "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
	b.admin(t, "", "federation", "peer", "add", "a.example", "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
	mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	alice, bob = newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), "login", "alice@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), "login", "bob@b.example", "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")
	return a, b, alice, bob
}

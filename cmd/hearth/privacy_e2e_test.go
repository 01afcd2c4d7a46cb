package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// markerForms are the byte strings that betray marker: itself, its hex
// (both cases) and its base64 in the standard and URL alphabets at each of
// the three alignments it can have inside a longer encoded value.
func markerForms(marker string) map[string][]byte {
	m := []byte(marker)
	forms := map[string][]byte{
		"raw":     m,
		"hex":     []byte(hex.EncodeToString(m)),
		"HEX":     []byte(strings.ToUpper(hex.EncodeToString(m))),
		"utf16le": utf16le(marker),
	}
	for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
		for shift := range 3 {
			data := append(make([]byte, shift), m...)
			s := enc.EncodeToString(data)
			start := 0
			if shift > 0 {
				start = 4 // the first group mixes in bytes before the marker
			}
			end := 4 * (len(data) / 3) // the last partial group mixes in bytes after it
			forms[name+"@"+string(rune('0'+shift))] = []byte(s[start:end])
		}
	}
	return forms
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s { // the marker is ASCII
		b = append(b, byte(r), 0)
	}
	return b
}

// findMarker returns "file: form" for every regular file under dir that
// holds one of forms.
func findMarker(t *testing.T, dir string, forms map[string][]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() { // folders, the admin socket
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, f := range forms {
			if bytes.Contains(b, f) {
				hits = append(hits, filepath.Base(path)+": "+name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// newMarker is a random ASCII marker, long enough that no file holds it
// by chance.
func newMarker(t *testing.T) string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "MARK" + base64.RawURLEncoding.EncodeToString(b)
}

// TestMarkerSearchFindsPlantedMarker proves the privacy test's search can
// fail: every form of a marker planted in a file (amid other bytes, at
// each alignment) is found, and a folder without it gives no hit.
func TestMarkerSearchFindsPlantedMarker(t *testing.T) {
	marker := newMarker(t)
	forms := markerForms(marker)
	dir := t.TempDir()
	if hits := findMarker(t, dir, forms); len(hits) != 0 {
		t.Fatalf("empty folder: %v", hits)
	}
	os.WriteFile(filepath.Join(dir, "clean"), []byte("nothing here "+newMarker(t)), 0o600)
	if hits := findMarker(t, dir, forms); len(hits) != 0 {
		t.Fatalf("folder without the marker: %v", hits)
	}
	plant := map[string][]byte{"raw": []byte("x" + marker + "y"), "hex": []byte("ab" + hex.EncodeToString([]byte(marker))),
		"HEX": []byte(strings.ToUpper(hex.EncodeToString([]byte("z" + marker)))), "utf16le": utf16le("<" + marker + ">")}
	for shift := range 3 {
		data := append(bytes.Repeat([]byte{0xfe}, shift), []byte(marker+"tail")...)
		plant["base64@"+string(rune('0'+shift))] = []byte(base64.StdEncoding.EncodeToString(data))
		plant["base64url@"+string(rune('0'+shift))] = []byte(base64.URLEncoding.EncodeToString(data))
	}
	for name, content := range plant {
		sub := filepath.Join(dir, "sub")
		os.MkdirAll(sub, 0o700)
		path := filepath.Join(sub, "planted")
		os.WriteFile(path, append([]byte("prefix\x00"), content...), 0o600)
		hits := findMarker(t, dir, map[string][]byte{name: forms[name]})
		if len(hits) != 1 || hits[0] != "planted: "+name {
			t.Errorf("planted %s form not found: %v", name, hits)
		}
		os.Remove(path)
	}
}

// TestPrivacyNoPlaintextOnServer: after a conversation carrying a random
// marker (both directions, alice on two devices), no file under the
// server's data folder (the database with its -wal and -shm included)
// and not the server's log holds the marker in any form, while the
// devices' own histories do.
func TestPrivacyNoPlaintextOnServer(t *testing.T) {
	skipShort(t)
	n, a1, b1 := newMessagingNet(t)
	a2 := newProfile(t, "alice")
	linkDevice(t, n, a2, a1)
	marker := newMarker(t)
	forms := markerForms(marker)

	a1.must(t, "", "send", bobAddr, "alice says "+marker)
	b1.must(t, "", "send", aliceAddr, marker+" says bob")
	a2.must(t, "", "send", bobAddr, marker) // the marker alone, from the second device
	expectRecv(t, b1, aliceAddr+":alice says "+marker, aliceAddr+":"+marker)
	expectRecv(t, a1, bobAddr+":"+marker+" says bob", aliceAddr+":"+marker)
	expectRecv(t, a2, aliceAddr+":alice says "+marker, bobAddr+":"+marker+" says bob")
	for _, p := range []*profile{a1, a2, b1} {
		peer := bobAddr
		if p == b1 {
			peer = aliceAddr
		}
		if h := p.must(t, "", "history", peer); strings.Count(h, marker) != 3 {
			t.Fatalf("%s history does not hold the marker 3 times:\n%s", p.dir, h)
		}
	}

	// While serving (the WAL holds the newest pages) and after a clean
	// stop (checkpointed into hearth.db).
	for _, db := range []string{databaseFile, databaseFile + "-wal"} {
		if _, err := os.Stat(filepath.Join(n.dir, db)); err != nil {
			t.Fatalf("no %s while serving: %v", db, err)
		}
	}
	if hits := findMarker(t, n.dir, forms); len(hits) != 0 {
		t.Errorf("while serving, the data folder holds the marker: %v", hits)
	}
	n.srv.stop(t, syscall.SIGTERM)
	if hits := findMarker(t, n.dir, forms); len(hits) != 0 {
		t.Errorf("after shutdown, the data folder holds the marker: %v", hits)
	}
	log := []byte(n.srv.log())
	for name, f := range forms {
		if bytes.Contains(log, f) {
			t.Errorf("the server's log holds the marker (%s)", name)
		}
	}
}

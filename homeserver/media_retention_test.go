package homeserver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// TestMediaRetention: a complete media is deleted, file included, once it
// is older than the retention; a younger one stays; the expired bytes no
// longer count against the uploader's quota.
func TestMediaRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	h := newHarness(t, Config{Media: MediaConfig{Dir: dir, Retention: 24 * time.Hour, Quota: 1000, JanitorEvery: -1}})
	alice, _ := h.firstDevice("alice")
	old := alice.must(upload("", 600, 0, randBytes(600), true)).GetUploadMedia()
	alice.fails(upload("", 600, 0, randBytes(600), true), wire.Code_CODE_LIMIT) // over the quota
	h.clock.Add(23 * time.Hour)
	youngFile := randBytes(300)
	young := alice.must(upload("", 300, 0, youngFile, true)).GetUploadMedia()
	h.clock.Add(2 * time.Hour) // old: 25 h, young: 2 h
	if _, err := h.s.RunMediaJanitor(t.Context()); err != nil {
		t.Fatal(err)
	}
	alice.fails(download(old.MediaId, 0, 100), wire.Code_CODE_NOT_FOUND)
	if _, err := os.Stat(filepath.Join(dir, "complete", old.MediaId)); !os.IsNotExist(err) {
		t.Fatalf("expired media's file still there: %v", err)
	}
	if got := fetchAll(alice, young.MediaId, 0); !bytes.Equal(got, youngFile) {
		t.Fatal("the younger media did not survive")
	}
	alice.must(upload("", 600, 0, randBytes(600), true)) // the quota has room again
}

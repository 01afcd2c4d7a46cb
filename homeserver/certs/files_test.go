package certs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFileSourceReloadsChangedFiles(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	pems := make([][]byte, 2)
	for i := range pems {
		cfg := testConfig(t)
		if err := Init(cfg, Deps{}); err != nil {
			t.Fatal(err)
		}
		pems[i], _ = os.ReadFile(filepath.Join(cfg.Dir, LeafFile))
	}
	path := filepath.Join(t.TempDir(), "server.pem")
	put := func(b []byte, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(age)
		os.Chtimes(path, mt, mt)
	}
	put(pems[0], -time.Hour)
	if _, err := NewFileSource(path, filepath.Join(t.TempDir(), "missing.key"), Deps{}); err == nil {
		t.Fatal("NewFileSource with a missing key file succeeded")
	}
	fs, err := NewFileSource(path, path, Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := fs.GetCertificate(nil)

	put(pems[1], -time.Minute) // replaced by the ACME client
	clock.Add(reloadCheck / 2)
	if c, _ := fs.GetCertificate(nil); !c.Leaf.Equal(first.Leaf) {
		t.Error("files looked at before reloadCheck passed")
	}
	clock.Add(reloadCheck)
	second, err := fs.GetCertificate(nil)
	if err != nil || second.Leaf.Equal(first.Leaf) {
		t.Fatalf("changed files not reloaded: %v", err)
	}

	put([]byte("half-written garbage"), 0)
	clock.Add(reloadCheck)
	if c, err := fs.GetCertificate(nil); err != nil || !c.Leaf.Equal(second.Leaf) {
		t.Errorf("unloadable replacement: %v, previous kept %v", err, err == nil && c.Leaf.Equal(second.Leaf))
	}
	// Past its expiry with no replacement, nothing is served.
	clock.t = second.Leaf.NotAfter.Add(time.Minute)
	if _, err := fs.GetCertificate(nil); err == nil {
		t.Error("served an expired certificate")
	}
}

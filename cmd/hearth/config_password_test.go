package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hearth/homeserver"
	"hearth/storage"
)

// TestConfigPasswordHash: config.json's password_hash section reaches the
// homeserver (new hashes carry its cost), absent means the defaults, and
// bad values are refused at load.
func TestConfigPasswordHash(t *testing.T) {
	dir := t.TempDir()
	write := func(extra string) {
		t.Helper()
		js := `{"domain": "localhost", "listen": "127.0.0.1:0", "tls_hosts": null, "limits": {}, "allowed_origins": null` + extra + `}`
		if err := os.WriteFile(filepath.Join(dir, configFile), []byte(js), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(``)
	cfg, err := loadServerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.homeserverConfig("t").Password; p != (homeserver.PasswordParams{}) {
		t.Fatalf("no password_hash section gave %+v, want zero (the homeserver defaults)", p)
	}
	for _, bad := range []string{`{"memory_kib": 4}`, `{"memory_kib": 4194305}`, `{"max_concurrent": -1}`, `{"memory": 64}`} {
		write(`, "password_hash": ` + bad)
		if _, err := loadServerConfig(dir); err == nil {
			t.Errorf("password_hash %s accepted", bad)
		}
	}
	write(`, "password_hash": {"memory_kib": 64, "time": 1, "threads": 1, "max_concurrent": 3}`)
	if cfg, err = loadServerConfig(dir); err != nil {
		t.Fatal(err)
	}
	hc := cfg.homeserverConfig("t")
	if hc.Password != (homeserver.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, MaxConcurrent: 3}) {
		t.Fatalf("password params %+v", hc.Password)
	}
	db, err := storage.Open(filepath.Join(dir, databaseFile), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	hs, err := homeserver.New(hc, homeserver.Deps{DB: db, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if _, err := hs.UserAdd(context.Background(), "cheap", []byte("password-cheap"), false); err != nil {
		t.Fatal(err)
	}
	var u *storage.User
	if err := db.Read(context.Background(), func(tx *storage.Tx) (err error) { u, err = tx.UserByName("cheap"); return err }); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.PassHash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("stored hash %.40q does not carry the configured cost", u.PassHash)
	}
}

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/homeserver"
)

// TestConfigPresence: config.json's presence section reaches the
// homeserver, absent means the defaults, and bad values are refused at
// load.
func TestConfigPresence(t *testing.T) {
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
	if p := cfg.homeserverConfig("t").Presence; p != (homeserver.PresenceConfig{}) {
		t.Fatalf("no presence section gave %+v, want zero (the homeserver defaults)", p)
	}
	for _, bad := range []string{`{"refresh": "-1s"}`, `{"refresh": "10ms"}`, `{"lease": "-1m"}`, `{"refresh": 5}`, `{"ttl": "1m"}`} {
		write(`, "presence": ` + bad)
		if _, err := loadServerConfig(dir); err == nil {
			t.Errorf("presence %s accepted", bad)
		}
	}
	write(`, "presence": {"refresh": "1s", "lease": "2m"}`)
	if cfg, err = loadServerConfig(dir); err != nil {
		t.Fatal(err)
	}
	if p := cfg.homeserverConfig("t").Presence; p != (homeserver.PresenceConfig{Refresh: time.Second, Lease: 2 * time.Minute}) {
		t.Fatalf("presence %+v", p)
	}
}

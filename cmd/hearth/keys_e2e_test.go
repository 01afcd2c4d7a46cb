package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/homeserver"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
)

// forgeAccessToken signs an access token for device did of user with key,
// as someone holding that key could.
func forgeAccessToken(t *testing.T, key ed25519.PrivateKey, domain, user, did string) string {
	t.Helper()
	now := time.Now()
	body, err := json.Marshal(map[string]any{"iss": domain, "sub": user, "did": did, "iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(), "jti": "forged", "ims": now.UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding
	signing := b64.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`)) + "." + b64.EncodeToString(body)
	return signing + "." + b64.EncodeToString(ed25519.Sign(key, []byte(signing)))
}

// TestKeyRotationCommands: `hearth admin token-key rotate` replaces
// signing.key only, and a JWT forged with the retired key is refused
// after the grace while one signed with the new key works; `hearth admin
// federation key rotate` replaces federation.key only. Both files stay
// 0600, and neither private key is in hearth.db or its WAL.
func TestKeyRotationCommands(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	// A folder of an older version has no federation.key: its federation
	// key was signing.key's, and stays the same key, now in its own file.
	if err := os.Remove(filepath.Join(dir, fedKeyFile)); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--dir", dir)
	legacy, err := homeserver.ReadTokenKeyFile(filepath.Join(dir, signingKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if out := mustHearth(t, "", "admin", "--dir", dir, "federation", "list", "--json"); !strings.Contains(out, string(serverkey.IDOf(legacy.Public().(ed25519.PublicKey)))) {
		t.Fatalf("after the upgrade the federation key changed: %s", out)
	}
	if k, err := serverkey.ReadFile(filepath.Join(dir, fedKeyFile)); err != nil || k == nil || !bytes.Equal(k.PrivateKey().Seed(), legacy.Seed()) {
		t.Fatalf("federation.key after the upgrade: %v", err)
	}
	mustHearth(t, "pw of alice\n", "admin", "--dir", dir, "user", "add", "alice", "--password-stdin")
	ok, e := s.login(t, "alice", "pw of alice", false)
	if ok == nil {
		t.Fatalf("login: %v", e)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldToken := legacy
	fedBefore := read(fedKeyFile)
	hello := func(tok string) wire.Code {
		t.Helper()
		r := rawCall(t, s, &wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: tok}}})
		if r.GetHelloOk() != nil {
			return wire.Code_CODE_OK
		}
		return r.GetError().GetCode()
	}
	user := "alice@localhost"
	if c := hello(forgeAccessToken(t, oldToken, "localhost", user, ok.DeviceId)); c != wire.Code_CODE_OK {
		t.Fatalf("a token signed with the current key before rotation: %v", c) // the forging helper is right
	}

	out := mustHearth(t, "", "admin", "--dir", dir, "token-key", "rotate", "--grace", "0s")
	m := regexp.MustCompile(`^token key (\S+) is current; (\S+) retired, valid until \S+\n$`).FindStringSubmatch(out)
	if m == nil || m[2] != string(serverkey.IDOf(oldToken.Public().(ed25519.PublicKey))) {
		t.Fatalf("token-key rotate printed %q", out)
	}
	newToken, err := homeserver.ReadTokenKeyFile(filepath.Join(dir, signingKeyFile))
	if err != nil || string(serverkey.IDOf(newToken.Public().(ed25519.PublicKey))) != m[1] {
		t.Fatalf("signing.key after rotation: %v", err)
	}
	if !bytes.Equal(read(fedKeyFile), fedBefore) {
		t.Error("token-key rotate changed federation.key")
	}
	time.Sleep(10 * time.Millisecond)
	if c := hello(forgeAccessToken(t, oldToken, "localhost", user, ok.DeviceId)); c != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("JWT forged with the retired key: %v", c)
	}
	if c := hello(ok.AccessToken); c != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("token of the retired key after a 0s grace: %v", c)
	}
	if c := hello(forgeAccessToken(t, newToken, "localhost", user, ok.DeviceId)); c != wire.Code_CODE_OK {
		t.Fatalf("token of the new key: %v", c)
	}

	tokBefore := read(signingKeyFile)
	out = mustHearth(t, "", "admin", "--dir", dir, "federation", "key", "rotate", "--grace", "0s")
	if !strings.HasPrefix(out, "signing key ") {
		t.Fatalf("federation key rotate printed %q", out)
	}
	if bytes.Equal(read(fedKeyFile), fedBefore) || !bytes.Equal(read(signingKeyFile), tokBefore) {
		t.Error("federation key rotate must replace federation.key and only it")
	}
	fed, err := serverkey.ReadFile(filepath.Join(dir, fedKeyFile))
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("signing key %s is current", fed.ID())) {
		t.Fatalf("federation.key %v holds another key than %q", err, out)
	}
	if code := s.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	for _, name := range []string{signingKeyFile, fedKeyFile} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, fi.Mode(), err)
		}
	}
	db := read(databaseFile)
	wal, _ := os.ReadFile(filepath.Join(dir, databaseFile+"-wal"))
	for name, seed := range map[string][]byte{"token": newToken.Seed(), "federation": fed.PrivateKey().Seed()} {
		if bytes.Contains(db, seed) || bytes.Contains(wal, seed) {
			t.Errorf("the %s private key is in the database", name)
		}
	}
}

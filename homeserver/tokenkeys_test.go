package homeserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestTokenKeyRotation: `hearth admin token-key rotate` replaces the
// access-token key on its own (signing.key, mode 0600; the federation key
// is untouched). A token signed with the retired key — issued before the
// rotation, or forged with the old key after it — is accepted during the
// grace and refused after it, also after a restart; tokens of the new key
// work; refresh tokens go on working across the rotation.
func TestTokenKeyRotation(t *testing.T) {
	ctx := context.Background()
	keyDir := t.TempDir()
	h := newHarness(t, Config{KeyDir: keyDir})
	c, _ := h.firstDevice("erin")
	oldKey := h.key
	// What someone holding the old signing.key can mint for erin's device.
	forge := func() string {
		t.Helper()
		a := &authority{cfg: h.s.auth.cfg, keys: &tokenKeys{key: oldKey}, now: h.clock.Now, rand: h.s.rand}
		tok, _, err := a.issueAccessToken(c.user, c.device)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hello := func(tok string) wire.Code {
		t.Helper()
		f := h.connect().hello(tok)
		if f.GetHelloOk() != nil {
			return wire.Code_CODE_OK
		}
		return f.GetError().GetCode()
	}
	if _, err := h.s.TokenKeyRotate(ctx, -time.Second); wire.KindOf(err) != wire.Code_CODE_BAD_REQUEST {
		t.Fatalf("negative grace: %v", err)
	}
	const grace = 5 * time.Minute
	rot, err := h.s.TokenKeyRotate(ctx, grace)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Retired != tokenKeyID(oldKey) || rot.Current == rot.Retired {
		t.Fatalf("rotation %+v, old key %s", rot, tokenKeyID(oldKey))
	}
	path := filepath.Join(keyDir, TokenKeyFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing.key: %v %v", st, err)
	}
	newKey, err := ReadTokenKeyFile(path)
	if err != nil || tokenKeyID(newKey) != rot.Current {
		t.Fatalf("signing.key holds %v (%v), want %s", newKey, err, rot.Current)
	}
	if _, err := os.Stat(filepath.Join(keyDir, nextTokenKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("signing.key.next left behind: %v", err)
	}
	// Within the grace: the old key's tokens still work.
	if code := hello(c.access); code != wire.Code_CODE_OK {
		t.Fatalf("token issued before the rotation, within the grace: %v", code)
	}
	if code := hello(forge()); code != wire.Code_CODE_OK {
		t.Fatalf("old-key token within the grace: %v", code)
	}
	// A refresh gives a token of the new key.
	r := h.connect().call(&wire.ClientFrame{Body: &wire.ClientFrame_Refresh{Refresh: &wire.Refresh{RefreshToken: c.refresh}}}).GetRefreshOk()
	if r == nil {
		t.Fatal("refresh after the rotation failed")
	}
	if _, err := parseAccessToken(newKey.Public().(ed25519.PublicKey), testDomain, h.clock.Now(), r.AccessToken); err != nil {
		t.Fatalf("refreshed token is not signed by the new key: %v", err)
	}

	h.clock.Add(grace + time.Second)
	if code := hello(forge()); code != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("token forged with the retired key after the grace: %v", code)
	}
	if code := hello(c.access); code != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("old token after the grace (still within its own lifetime): %v", code)
	}
	if code := hello(r.AccessToken); code != wire.Code_CODE_OK {
		t.Fatalf("new-key token: %v", code)
	}

	// After a restart (the server now starts from the new signing.key) the
	// retired key stays refused.
	h.stop()
	h.key = newKey
	h.start()
	if code := hello(forge()); code != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("retired key after a restart: %v", code)
	}
	if code := hello(r.AccessToken); code != wire.Code_CODE_OK {
		t.Fatalf("new-key token after a restart: %v", code)
	}
	// Started with the wrong (old) key, the server refuses to run.
	h.stop()
	db, err := storage.Open(h.path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := New(h.cfg, Deps{DB: db, SigningKey: oldKey, Now: h.clock.Now}); err == nil {
		t.Fatal("server started with a retired token key")
	}
}

// TestTokenKeyRotationInterrupted: a token key rotation that stopped after
// the database commit but before signing.key.next was renamed is finished
// at the next start, although the server is given the old signing.key.
func TestTokenKeyRotationInterrupted(t *testing.T) {
	keyDir := t.TempDir()
	h := newHarness(t, Config{KeyDir: keyDir})
	h.stop()
	_, next, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(next)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, nextTokenKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(h.path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := h.clock.Now().UnixMilli()
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		return tx.RotateTokenKey(&storage.FedServerKey{ID: tokenKeyID(h.key), Public: h.key.Public().(ed25519.PublicKey)},
			&storage.FedServerKey{ID: tokenKeyID(next), Public: next.Public().(ed25519.PublicKey), ValidFromMs: now}, now)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	h.start() // with the old key, as cmd/hearth would read the old signing.key
	if got := tokenKeyID(h.s.auth.signingKey()); got != tokenKeyID(next) {
		t.Fatalf("signs tokens with %s, want the committed %s", got, tokenKeyID(next))
	}
	if k, err := ReadTokenKeyFile(filepath.Join(keyDir, TokenKeyFile)); err != nil || tokenKeyID(k) != tokenKeyID(next) {
		t.Fatalf("signing.key after finishing: %v", err)
	}
}

package homeserver

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// Files of the access-token signing key in Config.KeyDir.
const (
	TokenKeyFile     = "signing.key"      // PKCS#8 PEM, 0600: the current token key
	nextTokenKeyFile = "signing.key.next" // a rotation's new key until the database records it
)

// tokenKeys are the keys access tokens are signed and verified with: the
// current private key and the retired public keys still accepted until
// their end (the grace of a rotation).
type tokenKeys struct {
	key       ed25519.PrivateKey
	validFrom time.Time
	retired   []retiredTokenKey
}

type retiredTokenKey struct {
	pub   ed25519.PublicKey
	until time.Time
}

// loadTokenKeys reads the retired token keys from the database and checks
// that key is the current one; with a key folder it finishes a rotation
// that stopped between the database commit and the rename of
// signing.key.next.
func loadTokenKeys(ctx context.Context, db *storage.DB, keyDir string, key ed25519.PrivateKey) (*tokenKeys, error) {
	var rows []*storage.FedServerKey
	if err := db.Read(ctx, func(tx *storage.Tx) (err error) { rows, err = tx.TokenKeys(); return err }); err != nil {
		return nil, fmt.Errorf("load token keys: %w", err)
	}
	tk := &tokenKeys{key: key}
	var cur *storage.FedServerKey
	for _, r := range rows {
		if r.ValidUntilMs == 0 {
			cur = r
			continue
		}
		tk.retired = append(tk.retired, retiredTokenKey{pub: ed25519.PublicKey(r.Public), until: time.UnixMilli(r.ValidUntilMs)})
	}
	nextPath := filepath.Join(keyDir, nextTokenKeyFile)
	var next ed25519.PrivateKey
	if keyDir != "" {
		var err error
		if next, err = ReadTokenKeyFile(nextPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if cur != nil {
		if cur.ValidFromMs != 0 {
			tk.validFrom = time.UnixMilli(cur.ValidFromMs)
		}
		switch {
		case tokenKeyID(key) == cur.ID:
		case next != nil && tokenKeyID(next) == cur.ID:
			if err := os.Rename(nextPath, filepath.Join(keyDir, TokenKeyFile)); err != nil {
				return nil, fmt.Errorf("finish token key rotation: %w", err)
			}
			if err := serverkey.SyncDir(keyDir); err != nil {
				return nil, err
			}
			tk.key, next = next, nil
		default:
			return nil, fmt.Errorf("the token signing key given is %s, the current one is %s", tokenKeyID(key), cur.ID)
		}
	}
	if next != nil { // a rotation that did not commit
		os.Remove(nextPath)
	}
	return tk, nil
}

func tokenKeyID(k ed25519.PrivateKey) string {
	return string(serverkey.IDOf(k.Public().(ed25519.PublicKey)))
}

// signingKey is the current token key.
func (s *authority) signingKey() ed25519.PrivateKey {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	return s.keys.key
}

// verifyKeys are the public keys a token may be signed with at now: the
// current one, then retired ones whose grace has not ended.
func (s *authority) verifyKeys(now time.Time) []ed25519.PublicKey {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	ks := []ed25519.PublicKey{s.keys.key.Public().(ed25519.PublicKey)}
	for _, r := range s.keys.retired {
		if !now.After(r.until) {
			ks = append(ks, r.pub)
		}
	}
	return ks
}

// rotateTokenKey makes a new access-token signing key current. Tokens
// the old key signed are accepted until now+grace, then refused; devices
// get new tokens with their refresh tokens, which do not depend on the
// key. The old private key is deleted (signing.key is replaced).
func (s *authority) rotateTokenKey(ctx context.Context, grace time.Duration) (admin.KeyRotation, error) {
	const op = "homeserver.TokenKeyRotate"
	if grace < 0 || grace > 30*24*time.Hour {
		return admin.KeyRotation{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "grace %s is outside 0..720h", grace)
	}
	dir := s.cfg.KeyDir
	if dir == "" {
		return admin.KeyRotation{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "this server has no key folder to keep a new key in")
	}
	_, next, err := ed25519.GenerateKey(s.rand)
	if err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(next)
	if err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	now := s.now()
	s.keysMu.RLock()
	oldKey, oldFrom := s.keys.key, s.keys.validFrom
	s.keysMu.RUnlock()
	oldPub := oldKey.Public().(ed25519.PublicKey)
	old := &storage.FedServerKey{ID: tokenKeyID(oldKey), Public: oldPub}
	if !oldFrom.IsZero() {
		old.ValidFromMs = oldFrom.UnixMilli()
	}
	until := now.Add(grace)
	nextPath := filepath.Join(dir, nextTokenKeyFile)
	if err := serverkey.WriteKeyFile(nextPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	nk := &storage.FedServerKey{ID: tokenKeyID(next), Public: next.Public().(ed25519.PublicKey), ValidFromMs: now.UnixMilli()}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.RotateTokenKey(old, nk, until.UnixMilli()) }); err != nil {
		os.Remove(nextPath)
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	if err := os.Rename(nextPath, filepath.Join(dir, TokenKeyFile)); err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	if err := serverkey.SyncDir(dir); err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	s.keysMu.Lock()
	s.keys = &tokenKeys{key: next, validFrom: now,
		retired: append(append([]retiredTokenKey(nil), s.keys.retired...), retiredTokenKey{pub: oldPub, until: until})}
	s.keysMu.Unlock()
	s.log.Info("access-token signing key rotated", "new_key", nk.ID, "retired_key", old.ID, "valid_until", until.UTC())
	return admin.KeyRotation{Current: nk.ID, Retired: old.ID, RetiredUntilMs: until.UnixMilli()}, nil
}

// ReadTokenKeyFile reads an access-token signing key: an Ed25519 private
// key in a PKCS#8 PEM file (a "PRIVATE KEY" block).
func ReadTokenKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return priv, nil
}

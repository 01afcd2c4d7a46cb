package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// memKeyring is a keyring in memory; the real OS keyring is exercised by
// cmd/hearth's TestProfileKeyringE2E against gnome-keyring.
type memKeyring struct {
	keys    map[string][]byte
	failSet error
}

func (k *memKeyring) Get(id string) ([]byte, error) {
	v, ok := k.keys[id]
	if !ok {
		return nil, ErrNoKey
	}
	return bytes.Clone(v), nil
}

func (k *memKeyring) Set(id string, key []byte) error {
	if k.failSet != nil {
		return k.failSet
	}
	if k.keys == nil {
		k.keys = map[string][]byte{}
	}
	k.keys[id] = bytes.Clone(key)
	return nil
}

// TestKeyringProfile: a new profile opened with a keyring is encrypted
// with a random key kept there; it reopens through the keyring; without
// the keyring, or when the keyring lost the key, or with a passphrase, it
// is refused with a clear error and the file is not changed.
func TestKeyringProfile(t *testing.T) {
	dir := t.TempDir()
	const secret = "KEYRING-SECRET"
	kr := &memKeyring{}
	s, err := OpenWith(dir, time.Second, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Protection(); got != "keyring" {
		t.Fatalf("protection %q, want keyring", got)
	}
	if len(kr.keys) != 1 {
		t.Fatalf("keyring holds %d keys, want 1", len(kr.keys))
	}
	fillProfile(t, s, secret)
	s.Close()
	raw := rawProfile(t, dir)
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the keyring-encrypted profile file holds a secret in plaintext")
	}
	for id, k := range kr.keys {
		if bytes.Contains(raw, k) {
			t.Fatal("the profile file holds its own key")
		}
		if !bytes.Contains(raw, []byte(id)) {
			t.Fatal("the profile does not name its keyring item")
		}
	}
	before := profileSum(t, dir)
	lost := &memKeyring{keys: map[string][]byte{}}
	for name, tc := range map[string]struct {
		opts Options
		want error
	}{
		"no keyring":       {Options{}, ErrKeyringLocked},
		"key lost":         {Options{Keyring: lost}, ErrKeyringLocked},
		"a passphrase":     {Options{Passphrase: []byte("guess")}, ErrPassphrase},
		"32-byte guess":    {Options{Passphrase: bytes.Repeat([]byte("x"), 32)}, ErrPassphrase},
		"key lost, phrase": {Options{Passphrase: []byte("guess"), Keyring: lost}, ErrPassphrase},
	} {
		if _, err := OpenWith(dir, time.Second, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if profileSum(t, dir) != before {
		t.Fatal("a refused open changed the profile")
	}
	s, err = OpenWith(dir, time.Second, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkProfile(t, s, secret)
	if len(kr.keys) != 1 {
		t.Fatalf("reopening added keys: %d", len(kr.keys))
	}
}

// TestKeyringLeavesPlainProfiles: an existing unencrypted profile (it holds
// an account) opened with a keyring stays as it is; EncryptKeyring converts
// it, leaving no plaintext in the file. When the keyring refuses a new
// profile's key, the open fails and nothing is sealed: no profile is ever
// sealed under a key the keyring does not hold.
func TestKeyringLeavesPlainProfiles(t *testing.T) {
	dir := t.TempDir()
	const secret = "PLAIN-BEFORE-KEYRING"
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fillProfile(t, s, secret)
	s.Close()
	kr := &memKeyring{}
	s, err = OpenWith(dir, time.Second, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if s.Protection() != "none" || len(kr.keys) != 0 {
		t.Fatalf("an existing plain profile was changed by a keyring: %s, %d keys", s.Protection(), len(kr.keys))
	}
	if err := s.EncryptKeyring(kr); err != nil {
		t.Fatal(err)
	}
	if err := s.EncryptKeyring(kr); !errors.Is(err, ErrEncrypted) {
		t.Fatalf("second encrypt: %v", err)
	}
	s.Close()
	if raw := rawProfile(t, dir); bytes.Contains(raw, []byte(secret)) {
		t.Fatal("plaintext left in the profile file after encrypting")
	}
	s, err = OpenWith(dir, time.Second, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	checkProfile(t, s, secret)
	s.Close()

	fresh := t.TempDir()
	refusing := &memKeyring{failSet: errors.New("keyring is locked")}
	if _, err := OpenWith(fresh, time.Second, Options{Keyring: refusing}); err == nil {
		t.Fatal("a new profile opened although the keyring refused its key")
	}
	s, err = Open(fresh, time.Second)
	if err != nil {
		t.Fatalf("the profile whose keyring refused the key cannot be opened plain: %v", err)
	}
	defer s.Close()
	if s.Protection() != "none" {
		t.Fatalf("protection %q", s.Protection())
	}
}

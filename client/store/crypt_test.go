package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func init() { KDFParams = kdfRecord{Time: 1, MemoryKiB: 1024, Threads: 1} } // fast; the defaults are the same code

// fillProfile writes one record of every kind, each holding secret.
func fillProfile(t *testing.T, s *Store, secret string) {
	t.Helper()
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutAccount(Account{User: "a@x.example", DeviceID: "D", AccessToken: secret + "-token"}); err != nil {
			return err
		}
		if err := tx.PutKey(KeyIdentity, []byte(secret+"-identity")); err != nil {
			return err
		}
		if _, err := tx.AddHistory(Message{ID: "m1", Conversation: "c@x.example", Seq: 1, Text: secret + "-text"}); err != nil {
			return err
		}
		if err := tx.AddInbox(Message{ID: "m1", Conversation: "c@x.example", Seq: 1, Text: secret + "-inbox"}); err != nil {
			return err
		}
		if err := tx.PutGroupSplit("c@x.example", []byte(secret+"-state"), map[string][]byte{"r1": []byte(secret + "-tree")}); err != nil {
			return err
		}
		if _, err := tx.AddOutbox(OutboxItem{ID: "o1", To: "b@x.example", Text: secret + "-outbox"}); err != nil {
			return err
		}
		if err := tx.PutMeta("m", []byte(secret+"-meta")); err != nil {
			return err
		}
		return tx.SetMailboxSeq(7)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkProfile reads every record fillProfile wrote.
func checkProfile(t *testing.T, s *Store, secret string) {
	t.Helper()
	err := s.View(func(tx *Tx) error {
		a, err := tx.Account()
		if err != nil || a.AccessToken != secret+"-token" {
			t.Errorf("account %+v %v", a, err)
		}
		if k, err := tx.Key(KeyIdentity); string(k) != secret+"-identity" {
			t.Errorf("key %q %v", k, err)
		}
		if h, err := tx.History("c@x.example", 0); len(h) != 1 || h[0].Text != secret+"-text" {
			t.Errorf("history %+v %v", h, err)
		}
		if in, err := tx.Inbox(0); len(in) != 1 || in[0].Text != secret+"-inbox" {
			t.Errorf("inbox %+v %v", in, err)
		}
		if g, err := tx.Group("c@x.example"); string(g) != secret+"-state" {
			t.Errorf("group %q %v", g, err)
		}
		if tr, err := tx.GroupTree("c@x.example", []byte("r1")); string(tr) != secret+"-tree" {
			t.Errorf("tree %q %v", tr, err)
		}
		if o, err := tx.Outbox(); len(o) != 1 || o[0].Text != secret+"-outbox" {
			t.Errorf("outbox %+v %v", o, err)
		}
		if heads, err := tx.OutboxHeads(); len(heads) != 1 || heads[0].ID != "o1" {
			t.Errorf("outbox heads %+v %v", heads, err)
		}
		if m := tx.Meta("m"); string(m) != secret+"-meta" {
			t.Errorf("meta %q", m)
		}
		if n := tx.MailboxSeq(); n != 7 {
			t.Errorf("mailbox seq %d", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// profileSum is the SHA-256 of what the profile stores (rawProfile).
func profileSum(t *testing.T, dir string) [32]byte {
	t.Helper()
	return sha256.Sum256(rawProfile(t, dir))
}

// TestEncryptedProfile: a new profile opened with a passphrase keeps no
// secret readable in its file; it reopens with the passphrase; without it
// or with a wrong one it is refused with a clear error and the file is not
// changed.
func TestEncryptedProfile(t *testing.T) {
	dir := t.TempDir()
	const secret = "S3CRET-VALUE"
	pass := []byte("correct horse battery staple")
	s, err := OpenWith(dir, time.Second, Options{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Encrypted() {
		t.Fatal("a new profile with a passphrase is not encrypted")
	}
	fillProfile(t, s, secret)
	checkProfile(t, s, secret)
	s.Close()
	raw := rawProfile(t, dir)
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the encrypted profile file holds a secret in plaintext")
	}
	before := profileSum(t, dir)
	for name, tc := range map[string]struct {
		pass []byte
		want error
	}{"no passphrase": {nil, ErrLocked}, "wrong passphrase": {[]byte("wrong"), ErrPassphrase}} {
		if _, err := OpenWith(dir, time.Second, Options{Passphrase: tc.pass}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if profileSum(t, dir) != before {
		t.Fatal("a refused open changed the profile")
	}
	s, err = OpenWith(dir, time.Second, Options{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkProfile(t, s, secret)
	// A value moved to another record does not open.
	err = s.Update(func(tx *Tx) error {
		b := tx.tx.Bucket(bKeys)
		return b.Put([]byte("other"), cloneBytes(b.Get([]byte(KeyIdentity))))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error { _, err := tx.Key("other"); return err }); err == nil {
		t.Fatal("a sealed value opened under another record key")
	}
}

// TestEncryptExistingProfile: an unencrypted profile keeps working without
// a passphrase, refuses one (it is not encrypted), and Encrypt turns it
// into an encrypted profile with every record readable and no plaintext
// left in the file (compacted).
func TestEncryptExistingProfile(t *testing.T) {
	dir := t.TempDir()
	const secret = "PLAIN-SECRET"
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fillProfile(t, s, secret)
	s.Close()
	if raw := rawProfile(t, dir); !bytes.Contains(raw, []byte(secret)) {
		t.Fatal("test setup: the plain profile does not hold the secret")
	}
	before := profileSum(t, dir)
	if _, err := OpenWith(dir, time.Second, Options{Passphrase: []byte("p")}); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("passphrase for a plain profile: %v", err)
	}
	if profileSum(t, dir) != before {
		t.Fatal("a refused open changed the profile")
	}
	s, err = Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var other *Store
	if sharedProfiles {
		other, err = Open(dir, time.Second) // another process, opened before the encryption
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
	}
	pass := []byte("a long passphrase")
	if err := s.Encrypt(pass); err != nil {
		t.Fatal(err)
	}
	if other != nil {
		if err := other.Update(func(tx *Tx) error { return tx.PutMeta("late", []byte("plaintext")) }); !errors.Is(err, ErrLocked) {
			t.Fatalf("a store opened before the encryption wrote: %v", err)
		}
	}
	checkProfile(t, s, secret)
	if err := s.Encrypt(pass); !errors.Is(err, ErrEncrypted) {
		t.Fatalf("second encrypt: %v", err)
	}
	s.Close()
	if raw := rawProfile(t, dir); bytes.Contains(raw, []byte(secret)) {
		t.Fatal("plaintext left in the profile file after encrypting")
	}
	if _, err := Open(dir, time.Second); !errors.Is(err, ErrLocked) {
		t.Fatalf("open without passphrase: %v", err)
	}
	s, err = OpenWith(dir, time.Second, Options{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkProfile(t, s, secret)
}

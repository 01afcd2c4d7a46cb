//go:build !js

package store

import (
	"errors"
	"testing"
)

func readAccount(t *testing.T, s *Store) Account {
	t.Helper()
	var a Account
	if err := s.Peek(func(tx *Tx) (err error) { a, err = tx.Account(); return }); err != nil {
		t.Fatal(err)
	}
	return a
}

func putAccount(s *Store, token string) error {
	return s.Update(func(tx *Tx) error {
		return tx.PutAccount(Account{User: "alice@a.example", DeviceID: "D1", AccessToken: token})
	})
}

// TestAccountCached: the decoded account is served from memory while the
// file stays open (a value written under it directly, not through
// PutAccount, is not seen), and every write through the store, failed
// writes and other processes' writes are.
func TestAccountCached(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	if err := putAccount(s, "t1"); err != nil {
		t.Fatal(err)
	}
	if got := readAccount(t, s).AccessToken; got != "t1" {
		t.Fatalf("token %q, want t1", got)
	}
	// The cache is used: garbage put under the record behind its back
	// does not show while the file stays open.
	if err := s.Update(func(tx *Tx) error { return tx.tx.Bucket(bAccount).Put(kAccount, []byte("{garbage")) }); err != nil {
		t.Fatal(err)
	}
	if got := readAccount(t, s).AccessToken; got != "t1" {
		t.Fatalf("token %q, want t1 from the cache", got)
	}
	if err := putAccount(s, "t2"); err != nil {
		t.Fatal(err)
	}
	if got := readAccount(t, s).AccessToken; got != "t2" {
		t.Fatalf("after PutAccount: token %q, want t2", got)
	}

	// Inside one Update the write is seen at once; a failed Update leaves
	// the committed account.
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutAccount(Account{User: "alice@a.example", DeviceID: "D1", AccessToken: "t3"}); err != nil {
			return err
		}
		if a, err := tx.Account(); err != nil || a.AccessToken != "t3" {
			t.Errorf("in the writing transaction: %q %v, want t3", a.AccessToken, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update = %v", err)
	}
	if got := readAccount(t, s).AccessToken; got != "t2" {
		t.Fatalf("after a failed update: token %q, want t2", got)
	}
	if err := s.Update(func(tx *Tx) error { _, err := tx.Account(); return err }); err != nil {
		t.Fatal(err)
	}
	if got := readAccount(t, s).AccessToken; got != "t2" {
		t.Fatalf("after the next update: token %q, want t2", got)
	}

	// A deleted account is not found.
	if err := s.Update(func(tx *Tx) error { return tx.DeleteAccount() }); err != nil {
		t.Fatal(err)
	}
	if err := s.Peek(func(tx *Tx) error { _, err := tx.Account(); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after DeleteAccount: %v, want ErrNotFound", err)
	}

	// Another process's write is seen once this one opens the file again.
	if err := putAccount(s, "t4"); err != nil {
		t.Fatal(err)
	}
	readAccount(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other := open(t, dir)
	if err := putAccount(other, "t5"); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if got := readAccount(t, s).AccessToken; got != "t5" {
		t.Fatalf("after another store wrote: token %q, want t5", got)
	}
}

// TestAccountCacheSnapshots: what a transaction decoded is served only to
// transactions that see the same record. (Transaction ids as bbolt gives
// them: a reader has the id of the last commit, a writer the next one.
// A reader cannot be held open across a write in a test of the Store
// itself: bbolt's writer may wait for it to grow the file.)
func TestAccountCacheSnapshots(t *testing.T) {
	var c recCache[Account]
	a := func(tok string) Account { return Account{AccessToken: tok} }
	c.put(5, a("v5")) // a reader after commit 5
	if got, ok := c.get(5); !ok || got.AccessToken != "v5" {
		t.Fatalf("get(5) = %v %v", got, ok)
	}
	c.wrote(6) // writer 6 changes the account (not committed yet)
	if _, ok := c.get(5); ok {
		t.Fatal("a reader at 5 got an entry after writer 6 wrote")
	}
	c.put(5, a("v5")) // a reader that began before writer 6 decodes late
	if _, ok := c.get(6); ok {
		t.Fatal("the old snapshot's account was served to a transaction at 6")
	}
	c.put(6, a("v6")) // writer 6 reads back what it wrote, commits
	if got, ok := c.get(7); !ok || got.AccessToken != "v6" {
		t.Fatalf("get(7) = %v %v, want v6", got, ok)
	}
	c.wrote(7) // writer 7 changes it
	c.put(7, a("v7"))
	c.failed(7) // and fails: its write is gone, the next writer is 7 again
	if _, ok := c.get(7); ok {
		t.Fatal("the failed writer's account was served")
	}
	c.put(6, a("v6")) // a reader at 6 (the last commit) decodes again
	if got, ok := c.get(6); !ok || got.AccessToken != "v6" {
		t.Fatalf("after the failed write: get(6) = %v %v, want v6", got, ok)
	}
	c.wrote(7)
	c.failed(8) // a later failure does not undo writer 7's count
	c.put(6, a("v6"))
	if _, ok := c.get(7); ok {
		t.Fatal("a reader at 6 decoded an account served at 7 after writer 7 wrote")
	}
}

// TestSignatureKeyCached: the signature key is served from memory while
// the file stays open, and PutKey, DeleteKey and failed writes are seen.
func TestSignatureKeyCached(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	key := func() string {
		t.Helper()
		var k []byte
		err := s.Peek(func(tx *Tx) (err error) { k, err = tx.Key(KeySignature); return })
		if errors.Is(err, ErrNotFound) {
			return "(none)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(k)
	}
	put := func(v string) error {
		return s.Update(func(tx *Tx) error { return tx.PutKey(KeySignature, []byte(v)) })
	}
	if err := put("k1"); err != nil {
		t.Fatal(err)
	}
	if got := key(); got != "k1" {
		t.Fatalf("key %q, want k1", got)
	}
	if err := s.Update(func(tx *Tx) error { return tx.tx.Bucket(bKeys).Put([]byte(KeySignature), []byte("behind")) }); err != nil {
		t.Fatal(err)
	}
	if got := key(); got != "k1" {
		t.Fatalf("key %q, want k1 from the cache", got)
	}
	if err := put("k2"); err != nil {
		t.Fatal(err)
	}
	if got := key(); got != "k2" {
		t.Fatalf("after PutKey: key %q, want k2", got)
	}
	boom := errors.New("boom")
	if err := s.Update(func(tx *Tx) error { tx.PutKey(KeySignature, []byte("k3")); return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got := key(); got != "k2" {
		t.Fatalf("after a failed write: key %q, want k2", got)
	}
	var k []byte
	s.Peek(func(tx *Tx) (err error) { k, err = tx.Key(KeySignature); return })
	k[0] = 'X' // a caller's copy: the cache keeps its own
	if got := key(); got != "k2" {
		t.Fatalf("after changing a returned key: %q, want k2", got)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteKey(KeySignature) }); err != nil {
		t.Fatal(err)
	}
	if got := key(); got != "(none)" {
		t.Fatalf("after DeleteKey: key %q, want none", got)
	}
}

// TestCachedAccountKey: the account and signature key read without a
// transaction are always what a Peek reads at that moment: never a
// value written by a transaction that has not committed or that failed,
// never one from before a commit of this process, and nothing at all
// while the file is closed or after another process may have written it.
func TestCachedAccountKey(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	cached := func() (string, bool) {
		t.Helper()
		a, ok := s.CachedAccount()
		a2, sig, ok2 := s.CachedAccountKey()
		if ok2 && (!ok || a2 != a) {
			t.Fatalf("CachedAccountKey %v %v, CachedAccount %v %v", a2, ok2, a, ok)
		}
		if ok2 && string(sig) != "sig" {
			t.Fatalf("cached signature key %q", sig)
		}
		if ok {
			if peek := readAccount(t, s).AccessToken; peek != a.AccessToken {
				t.Fatalf("cached token %q, a Peek reads %q", a.AccessToken, peek)
			}
		}
		return a.AccessToken, ok
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutKey(KeySignature, []byte("sig")) }); err != nil {
		t.Fatal(err)
	}
	if err := putAccount(s, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(); ok {
		t.Fatal("an account served before any transaction decoded it")
	}
	readAccount(t, s)
	s.Peek(func(tx *Tx) error { _, err := tx.Key(KeySignature); return err })
	if tok, ok := cached(); !ok || tok != "t1" {
		t.Fatalf("cached %q %v, want t1", tok, ok)
	}
	if _, sig, ok := s.CachedAccountKey(); !ok {
		t.Fatal("the signature key was not cached")
	} else {
		sig[0] = 'X' // the caller's copy
	}
	if err := putAccount(s, "t2"); err != nil {
		t.Fatal(err)
	}
	if tok, _ := cached(); tok == "t1" {
		t.Fatal("the account from before a commit was served")
	}
	readAccount(t, s)
	// Inside a write that changed it, and after the write failed, the
	// uncommitted account is never served.
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutAccount(Account{User: "alice@a.example", DeviceID: "D1", AccessToken: "t3"}); err != nil {
			return err
		}
		if tok, ok := cached(); ok && tok != "t2" {
			t.Errorf("during a write: cached %q, want t2 or nothing", tok)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if tok, ok := cached(); ok && tok != "t2" {
		t.Fatalf("after a failed write: cached %q", tok)
	}
	readAccount(t, s)
	if tok, ok := cached(); !ok || tok != "t2" {
		t.Fatalf("cached %q %v, want t2", tok, ok)
	}
	// Closed, then written by another process: nothing is served until
	// this one reads it again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(); ok {
		t.Fatal("an account served while the file is closed")
	}
	other := open(t, dir)
	if err := putAccount(other, "t5"); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := s.Peek(func(tx *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if tok, ok := cached(); ok {
		t.Fatalf("after another process wrote: cached %q before any read", tok)
	}
	if got := readAccount(t, s).AccessToken; got != "t5" {
		t.Fatalf("token %q, want t5", got)
	}
	if tok, ok := cached(); !ok || tok != "t5" {
		t.Fatalf("cached %q %v, want t5", tok, ok)
	}
}

// TestKeysChecked: a check of the keys noted in one transaction holds in
// later ones until a key is written (put or deleted, committed or not),
// and not after the file is opened again (another process may have
// written keys meanwhile).
func TestKeysChecked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	checked := func() bool {
		t.Helper()
		var ok bool
		if err := s.Peek(func(tx *Tx) error { ok = tx.KeysChecked(); return nil }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	mark := func() {
		t.Helper()
		if err := s.Peek(func(tx *Tx) error { tx.MarkKeysChecked(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if checked() {
		t.Fatal("checked before any mark")
	}
	mark()
	if !checked() {
		t.Fatal("mark not kept")
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutMeta("other", []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if !checked() {
		t.Fatal("a write of no key dropped the mark")
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutKeyPackage([]byte("r1"), []byte("p")) }); err != nil {
		t.Fatal(err)
	}
	if checked() {
		t.Fatal("mark kept across a KeyPackage written")
	}
	mark()
	if err := s.Update(func(tx *Tx) error { return tx.DeleteKeyPackage([]byte("r1")) }); err != nil {
		t.Fatal(err)
	}
	if checked() {
		t.Fatal("mark kept across a KeyPackage deleted")
	}
	mark()
	boom := errors.New("rolled back")
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutKey("k", []byte("v")); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if checked() {
		t.Fatal("mark kept across a failed transaction that wrote a key")
	}
	// Marked in a write transaction after its own key write: holds.
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutKey("k", []byte("v")); err != nil {
			return err
		}
		tx.MarkKeysChecked()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !checked() {
		t.Fatal("a mark after the transaction's own key write not kept")
	}
	// Marked before a key write in the same transaction: does not hold.
	if err := s.Update(func(tx *Tx) error {
		tx.MarkKeysChecked()
		return tx.PutKey("k", []byte("w"))
	}); err != nil {
		t.Fatal(err)
	}
	if checked() {
		t.Fatal("a mark before the transaction's own key write kept")
	}
	mark()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if checked() {
		t.Fatal("mark kept across the file opened again")
	}
}

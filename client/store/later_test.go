package store

import (
	"errors"
	"testing"
	"time"
)

// TestLaterRidesOnTheNextUpdate: a write put off by Later costs no commit
// of its own; the next Update commits it with its own changes, a Peek does
// not see it, a View commits it first, a failed Update keeps it pending
// (a newer write of the same key replaces it), Close writes it, and
// DiscardLater drops it as a crash would.
func TestLaterRidesOnTheNextUpdate(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	put := func(k, v string) func(*Tx) error {
		return func(tx *Tx) error { return tx.PutMeta(k, []byte(v)) }
	}
	get := func(read func(func(*Tx) error) error, k string) string {
		t.Helper()
		var v []byte
		if err := read(func(tx *Tx) error { v = tx.Meta(k); return nil }); err != nil {
			t.Fatal(err)
		}
		return string(v)
	}

	c0 := s.Commits()
	done := 0
	s.Later("a", put("a", "1"), func() { done++ })
	if !s.Pending() || s.Commits() != c0 {
		t.Fatalf("pending %v, commits %d → %d: Later must not commit", s.Pending(), c0, s.Commits())
	}
	if v := get(s.Peek, "a"); v != "" {
		t.Fatalf("a Peek saw the put-off write: %q", v)
	}
	if err := s.Update(put("b", "2")); err != nil {
		t.Fatal(err)
	}
	if s.Commits() != c0+1 || done != 1 || s.Pending() {
		t.Fatalf("after one Update: commits +%d, done %d, pending %v; want +1, 1, false", s.Commits()-c0, done, s.Pending())
	}
	if a, b := get(s.Peek, "a"), get(s.Peek, "b"); a != "1" || b != "2" {
		t.Fatalf("a=%q b=%q after the Update", a, b)
	}

	// A View commits what is pending before it reads.
	s.Later("a", put("a", "viewed"), nil)
	if v := get(s.View, "a"); v != "viewed" || s.Pending() {
		t.Fatalf("View read a=%q, pending %v", v, s.Pending())
	}

	// A View inside an Update (the same goroutine) reads as a Peek
	// instead of waiting for that Update forever.
	s.Later("a", put("a", "nested"), nil)
	err := s.Update(func(*Tx) error {
		s.Later("n", put("n", "1"), nil)
		return s.View(func(tx *Tx) error { return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := get(s.View, "a"); v != "nested" || s.Pending() {
		t.Fatalf("a=%q pending %v after the nested View", v, s.Pending())
	}
	// Also far down the stack: the Update's frame is looked for in all
	// of it.
	var deep func(n int) error
	deep = func(n int) error {
		if n == 0 {
			return s.View(func(tx *Tx) error { return nil })
		}
		return deep(n - 1)
	}
	err = s.Update(func(*Tx) error {
		s.Later("n", put("n", "2"), nil)
		return deep(300)
	})
	if err != nil {
		t.Fatal(err)
	}

	// A failed Update rolls the put-off write back and keeps it; a newer
	// write of the same key replaces it.
	s.Later("a", put("a", "old"), nil)
	boom := errors.New("boom")
	if err := s.Update(func(*Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed Update: %v", err)
	}
	if v := get(s.Peek, "a"); v != "nested" || !s.Pending() {
		t.Fatalf("after a failed Update: a=%q pending %v, want the old value and still pending", v, s.Pending())
	}
	s.Later("a", put("a", "new"), nil)
	if err := s.WriteLater(); err != nil {
		t.Fatal(err)
	}
	if v := get(s.Peek, "a"); v != "new" {
		t.Fatalf("a=%q, want the newer put-off write", v)
	}

	// A put-off write that fails fails the Update that runs it, which
	// changes nothing; the write stays pending.
	s.Later("bad", func(*Tx) error { return boom }, nil)
	if err := s.Update(put("c", "3")); !errors.Is(err, boom) {
		t.Fatalf("Update running a failing put-off write: %v", err)
	}
	if v := get(s.Peek, "c"); v != "" || !s.Pending() {
		t.Fatalf("c=%q pending %v after the failed Update", v, s.Pending())
	}
	s.DiscardLater()

	// Close writes what is pending; DiscardLater (a crash) loses it.
	s.Later("d", put("d", "closed"), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Later("e", put("e", "crashed"), nil)
	s.DiscardLater()
	s.Close()
	s2 := open(t, dir)
	defer s2.Close()
	if d, e := get(s2.View, "d"), get(s2.View, "e"); d != "closed" || e != "" {
		t.Fatalf("after reopening: d=%q e=%q, want closed and nothing", d, e)
	}
}

// TestViewBesideAnUpdateSeesPutOffWrites: a View on one goroutine while
// another goroutine's Update runs (one that took the put-off writes, or
// one that did not) reads them: it waits for that Update rather than read
// as a Peek, which only a View nested in its own goroutine's Update does.
func TestViewBesideAnUpdateSeesPutOffWrites(t *testing.T) {
	s := open(t, t.TempDir())
	for _, takes := range []bool{true, false} {
		release, inside := make(chan struct{}), make(chan struct{})
		if takes {
			s.Later("k", func(tx *Tx) error { return tx.PutMeta("k", []byte("taken")) }, nil)
		}
		errc := make(chan error, 1)
		go func() {
			errc <- s.Update(func(*Tx) error { close(inside); <-release; return nil })
		}()
		<-inside
		want := "taken"
		if !takes {
			s.Later("k", func(tx *Tx) error { return tx.PutMeta("k", []byte("pending")) }, nil)
			want = "pending"
		}
		time.AfterFunc(50*time.Millisecond, func() { close(release) })
		var got []byte
		if err := s.View(func(tx *Tx) error { got = tx.Meta("k"); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("View beside an Update read %q, want %q", got, want)
		}
	}
}

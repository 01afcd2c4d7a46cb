package store

import (
	"os"
	"testing"
	"time"
)

func (s *Store) wantLooks() (stats, opens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wantStats, s.opens
}

// TestWantWatched: a busy Store looks for the want file every wantBusy,
// but with its folder watched it stats the file once per opening and
// after each change of it, not per look; a want file made by another
// process (here written directly) still makes it give the file away
// within about wantBusy.
func TestWantWatched(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	busyFor := func(d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); {
			if err := increment(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	stats0, opens0 := s.wantLooks()
	busyFor(400 * time.Millisecond) // ≈ 20 looks
	stats1, opens1 := s.wantLooks()
	if opens1 != opens0 {
		t.Fatalf("a busy store with no one waiting opened the file again (%d → %d)", opens0, opens1)
	}
	if n := stats1 - stats0; n > 2 {
		t.Fatalf("%d stats of the want file in 400 ms of transactions without any change of it, want at most 2 (one per opening)", n)
	}

	// Another process wants the file.
	if err := os.WriteFile(s.wantPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	touched := time.Now()
	for {
		if err := increment(s); err != nil {
			t.Fatal(err)
		}
		if _, opens := s.wantLooks(); opens > opens1 {
			break // gave the file away and opened it again
		}
		if time.Since(touched) > 2*time.Second {
			t.Fatal("busy store did not give the file away 2 s after the want file was made")
		}
	}
	if _, err := os.Stat(s.wantPath); !os.IsNotExist(err) {
		t.Fatalf("want file still there after the reopen: %v", err)
	}
	stats2, opens2 := s.wantLooks()
	busyFor(400 * time.Millisecond)
	stats3, opens3 := s.wantLooks()
	if opens3 != opens2 {
		t.Fatalf("the removed want file made the store give the file away again (%d → %d)", opens2, opens3)
	}
	if n := stats3 - stats2; n > 2 {
		t.Fatalf("%d stats of the want file in 400 ms after it was removed, want at most 2", n)
	}

	// A stale want file (older than wantFresh) does not count, and is
	// not looked at again while it stays as it is.
	if err := os.WriteFile(s.wantPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * wantFresh)
	if err := os.Chtimes(s.wantPath, old, old); err != nil {
		t.Fatal(err)
	}
	busyFor(100 * time.Millisecond)
	stats4, opens4 := s.wantLooks()
	busyFor(400 * time.Millisecond)
	stats5, opens5 := s.wantLooks()
	if opens5 != opens3 || opens4 != opens3 {
		t.Fatalf("a stale want file made the store give the file away (%d → %d)", opens3, opens5)
	}
	if n := stats5 - stats4; n != 0 {
		t.Fatalf("%d stats of an unchanged stale want file, want 0", n)
	}
	// Touched again, it counts.
	now := time.Now()
	if err := os.Chtimes(s.wantPath, now, now); err != nil {
		t.Fatal(err)
	}
	for {
		if err := increment(s); err != nil {
			t.Fatal(err)
		}
		if _, opens := s.wantLooks(); opens > opens5 {
			break
		}
		if time.Since(now) > 2*time.Second {
			t.Fatal("busy store did not give the file away 2 s after the want file was touched")
		}
	}
}

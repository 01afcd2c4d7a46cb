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
	// At most one stat per opening of the file, and the one event of
	// the opening (it removes the want file): a stall of IdleRelease
	// between two transactions on a loaded machine closes and opens the
	// file again, which is not what is tested here.
	perOpening := func(stats0, opens0, stats1, opens1 int) int { return stats1 - stats0 - 2*(opens1-opens0) }
	if err := increment(s); err != nil {
		t.Fatal(err)
	}
	stats0, opens0 := s.wantLooks()
	busyFor(400 * time.Millisecond) // ≈ 20 looks
	stats1, opens1 := s.wantLooks()
	if n := perOpening(stats0, opens0, stats1, opens1); n > 2 {
		t.Fatalf("%d stats of the want file in 400 ms of transactions without any change of it (%d openings), want at most 2 more than 2 per opening", stats1-stats0, opens1-opens0)
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
	if n := perOpening(stats2, opens2, stats3, opens3); n > 2 {
		t.Fatalf("%d stats of the want file in 400 ms after it was removed (%d openings), want at most 2 more than 2 per opening", stats3-stats2, opens3-opens2)
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
	if n := perOpening(stats4, opens4, stats5, opens5); n > 0 {
		t.Fatalf("%d stats of an unchanged stale want file (%d openings), want none but 2 per opening", stats5-stats4, opens5-opens4)
	}
	if _, err := os.Stat(s.wantPath); err != nil && opens5 == opens4 {
		t.Fatalf("the stale want file is gone (%v): the store gave the file away for it", err)
	}
	// Touched again, it counts.
	now := time.Now()
	err := os.Chtimes(s.wantPath, now, now)
	if os.IsNotExist(err) {
		err = os.WriteFile(s.wantPath, nil, 0o600) // removed by an opening after a stall
	}
	if err != nil {
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

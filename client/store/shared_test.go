//go:build !js

package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// increment adds one to a counter with a read-modify-write transaction:
// a lost update (two writers on one file at once) shows as a lower total.
func increment(s *Store) error {
	return s.Update(func(tx *Tx) error {
		var n uint64
		if v := tx.Meta("counter"); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return tx.PutMeta("counter", binary.BigEndian.AppendUint64(nil, n+1))
	})
}

func counter(t *testing.T, s *Store) uint64 {
	t.Helper()
	var n uint64
	if err := s.View(func(tx *Tx) error {
		if v := tx.Meta("counter"); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *Store) isOpen() (open bool, opens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db != nil, s.opens
}

// TestFileKeptOpenWhileBusy: back-to-back transactions use one open file;
// after IdleRelease without any the file is released, and a Store of
// another "process" opens it without waiting.
func TestFileKeptOpenWhileBusy(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	_, before := s.isOpen()
	for range 200 {
		if err := increment(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, opens := s.isOpen(); opens-before > 1 {
		t.Fatalf("200 back-to-back transactions opened the file %d times, want at most 1", opens-before)
	}
	for i := 0; ; i++ { // hang guard only: the release takes IdleRelease
		if o, _ := s.isOpen(); !o {
			break
		}
		if i > 1000 {
			t.Fatal("file still open 10 s after the last transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	other, err := Open(dir, time.Nanosecond) // one flock attempt: fails if anyone holds the file
	if err != nil {
		t.Fatalf("idle store still holds the file: %v", err)
	}
	defer other.Close()
	if got := counter(t, other); got != 200 {
		t.Fatalf("other store reads counter %d, want 200", got)
	}
}

// TestBusyStoreGivesWay: one Store runs transactions back to back (never
// idle); another Store on the same file still gets its transaction in,
// because the busy one closes the file when it sees the want file.
func TestBusyStoreGivesWay(t *testing.T) {
	dir := t.TempDir()
	busy := open(t, dir)
	defer busy.Close()
	var stop atomic.Bool
	var n atomic.Int64
	done := make(chan error, 1)
	go func() {
		for !stop.Load() {
			if err := increment(busy); err != nil {
				done <- err
				return
			}
			n.Add(1)
		}
		done <- nil
	}()
	for n.Load() < 50 { // the busy loop is running
		time.Sleep(time.Millisecond)
	}
	waiter, err := Open(dir, 5*time.Second)
	if err == nil {
		for range 20 {
			if err = increment(waiter); err != nil {
				break
			}
		}
	}
	stop.Store(true)
	if berr := <-done; berr != nil {
		t.Fatalf("busy store: %v", berr)
	}
	if err != nil {
		t.Fatalf("store waiting for a busy one: %v", err)
	}
	defer waiter.Close()
	if got, want := counter(t, waiter), uint64(n.Load())+20; got != want {
		t.Fatalf("counter %d, want %d (lost updates)", got, want)
	}
}

// TestStoresInterleave: several Stores on one file (as several processes)
// write concurrently; every read-modify-write lands.
func TestStoresInterleave(t *testing.T) {
	dir := t.TempDir()
	const stores, each = 3, 150
	var wg sync.WaitGroup
	errs := make(chan error, stores)
	for range stores {
		s := open(t, dir)
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := increment(s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	if got := counter(t, s); got != stores*each {
		t.Fatalf("counter %d, want %d", got, stores*each)
	}
}

// TestProcessesShareAProfile runs real processes (this test binary) that
// increment the counter of one profile while this process does too.
func TestProcessesShareAProfile(t *testing.T) {
	if dir := os.Getenv("HEARTH_STORE_HELPER_DIR"); dir != "" {
		s, err := Open(dir, 10*time.Second)
		if err == nil {
			for range 200 {
				if err = increment(s); err != nil {
					break
				}
			}
			s.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		return
	}
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	const procs = 2
	var cmds []*exec.Cmd
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessesShareAProfile$")
		cmd.Env = append(os.Environ(), "HEARTH_STORE_HELPER_DIR="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for range 200 {
		if err := increment(s); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process %d: %v", i, err)
		}
	}
	if got, want := counter(t, s), uint64(200*(procs+1)); got != want {
		t.Fatalf("counter %d, want %d", got, want)
	}
}

// TestPendingOutbox: failed items are skipped, order is kept, max bounds
// the answer.
func TestPendingOutbox(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	err := s.Update(func(tx *Tx) error {
		for i, id := range []string{"a", "b", "c", "d"} {
			it := OutboxItem{ID: id, To: "bob@b.example", Text: id}
			if i == 1 {
				it.Failed = "refused"
			}
			if _, err := tx.AddOutbox(it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		max  int
		want string
	}{{0, "a,c,d"}, {2, "a,c"}, {1, "a"}, {10, "a,c,d"}} {
		var got []string
		s.View(func(tx *Tx) error {
			items, err := tx.PendingOutbox(c.max)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				got = append(got, it.ID)
			}
			return nil
		})
		if g := fmt.Sprint(strings.Join(got, ",")); g != c.want {
			t.Errorf("PendingOutbox(%d) = %s, want %s", c.max, g, c.want)
		}
	}
}

// TestTwoStoresShareAProfile: two Stores on one profile folder (as two
// processes) see each other's commits and wait for each other. (The
// browser's store is one per profile: a Web Lock keeps a second tab out.)
func TestTwoStoresShareAProfile(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir) // as two processes would
	defer a.Close()
	defer b.Close()
	for i := uint64(1); i <= 4; i++ {
		s := a
		if i%2 == 0 {
			s = b
		}
		if err := s.Update(func(tx *Tx) error { return tx.SetMailboxSeq(i) }); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	// Each sees what the other committed.
	for _, s := range []*Store{a, b} {
		s.View(func(tx *Tx) error {
			if got := tx.MailboxSeq(); got != 4 {
				t.Errorf("seq = %d, want 4", got)
			}
			return nil
		})
	}
	// While one holds a transaction open, the other waits; past its timeout it says so.
	short, err := Open(dir, time.Second) // a and b may hold the file until they see the want file
	if err != nil {
		t.Fatal(err)
	}
	short.timeout = 50 * time.Millisecond
	release := make(chan struct{})
	held := make(chan struct{})
	go a.Update(func(tx *Tx) error { close(held); <-release; return nil })
	<-held
	err = short.View(func(tx *Tx) error { return nil })
	close(release)
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("view while another store holds the file = %v, want busy error", err)
	}
	if err := b.View(func(tx *Tx) error { return nil }); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

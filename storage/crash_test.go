package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

const crashEnv = "HEARTH_STORAGE_CRASH_DB"

// TestCrashDurability runs writers in a child process, kills it with
// SIGKILL in the middle of group commits, and checks on reopening that
// every write the child saw acknowledged is there, the mailbox sequence
// has no gap, and appends continue after the head. (A process kill, not a
// power cut: it proves acknowledgement only after COMMIT and a consistent
// file, not the disk's honesty about fsync.)
func TestCrashDurability(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := fixture(t, db, "c", 3)
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 400 {
		if n, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
			acked[n] = true
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("child acknowledged only %d writes before ending", len(acked))
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	var last uint64
	err = db.Read(context.Background(), func(tx *Tx) error {
		c, err := tx.Conversation("c@x")
		if err != nil {
			return err
		}
		last = c.LastSeq
		es, err := tx.Entries(ids[1], 0, 1<<30)
		if err != nil {
			return err
		}
		head, _, err := tx.MailboxState(ids[1])
		if err != nil {
			return err
		}
		if uint64(len(es)) != head || head != last {
			return fmt.Errorf("mailbox has %d entries, head %d, log last seq %d", len(es), head, last)
		}
		have := map[uint64]bool{}
		for i, e := range es {
			if e.Seq != uint64(i+1) {
				return fmt.Errorf("mailbox gap: entry %d has seq %d", i, e.Seq)
			}
			have[e.ConvSeq] = true
		}
		for s := range acked {
			if !have[s] {
				return fmt.Errorf("acknowledged write %d lost", s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, db, func(tx *Tx) error {
		heads, err := appendMsg(tx, "c@x", ids[0], last+1, "after crash")
		if err == nil && (len(heads) != 2 || heads[0].Seq != last+1) {
			err = fmt.Errorf("after crash: heads %v, want seq %d", heads, last+1)
		}
		return err
	})
	t.Logf("%d writes acknowledged before the kill, %d committed", len(acked), last)
}

// crashChild writes forever from 8 goroutines, printing each conversation
// sequence once its Write returned.
func crashChild(path string) {
	db, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var seq uint64
				err := db.Write(context.Background(), func(tx *Tx) error {
					c, err := tx.Conversation("c@x")
					if err != nil {
						return err
					}
					seq = c.LastSeq + 1
					_, err = appendMsg(tx, "c@x", "c-d0000", seq, "payload")
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println(seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

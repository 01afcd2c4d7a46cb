package storage

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCheckpointBesideWriter: no connection checkpoints in its COMMIT,
// the checkpointer copies the WAL into the database file in the
// background, and the WAL is rewound once it is long, so it stays bounded
// under steady writes, also after a reader held it back for a while.
// Everything written is there after a reopen.
func TestCheckpointBesideWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	const restart = 200
	const limit = 300 * (4096 + 24) // the WAL file is cut back to this size when rewound
	db, err := Open(path, Options{CheckpointInterval: time.Millisecond, RestartFrames: restart, walSizeLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, c := range map[string]func() (int, error){
		"writer": func() (n int, err error) { return n, db.w.QueryRow("PRAGMA wal_autocheckpoint").Scan(&n) },
		"reader": func() (n int, err error) { return n, db.r.QueryRow("PRAGMA wal_autocheckpoint").Scan(&n) },
		"checkpointer": func() (n int, err error) {
			return n, db.ckpt.conn.Load().QueryRow("PRAGMA wal_autocheckpoint").Scan(&n)
		},
	} {
		if n, err := c(); err != nil || n != 0 {
			t.Fatalf("%s connection: wal_autocheckpoint = %d (%v), want 0", name, n, err)
		}
	}

	big := strings.Repeat("x", 3000) // about a page per user row
	n := 0
	write := func(count int) {
		t.Helper()
		for range count {
			n++
			name := fmt.Sprint("u", n)
			if err := db.Write(ctx, func(tx *Tx) error {
				return tx.InsertUser(&User{Name: name, PassHash: big, CreatedMs: int64(n)})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	walFrames := func() int64 {
		st, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return (st.Size() - 32) / (4096 + 24)
	}

	// Steady writes: far more frames than the WAL is let to hold.
	write(1500)
	if db.ckpt.runs.Load() == 0 || db.ckpt.rewinds.Load() == 0 {
		t.Fatalf("checkpoints %d, rewinds %d: want both", db.ckpt.runs.Load(), db.ckpt.rewinds.Load())
	}
	// Each write is 2+ frames (the row's page, the index, the root):
	// without rewinds the WAL would hold 3,000 or more. On a loaded
	// machine the checkpointer can fall behind for a while, and the file
	// keeps the size it grew to until the next rewind cuts it back: a few
	// more writes give it that rewind.
	for more := 0; ; more++ {
		f, last := walFrames(), db.ckpt.frames.Load()
		if f <= 4*restart && last <= 4*restart {
			break
		}
		if more == 5 {
			t.Fatalf("WAL file of %d frames, %d in use, after %d writes: not rewound (restart at %d)", f, last, 1500+200*more, restart)
		}
		write(200)
	}

	// A reader holds its snapshot: the WAL cannot be checkpointed past
	// it nor rewound, and grows; the writer is not held up.
	// A reader that begins just when every frame has been copied into
	// the database reads the database file alone and holds no frame of
	// the WAL (SQLite's read mark 0), so it does not hold the WAL back:
	// that start is taken again, a few times at most.
	var rtx *sql.Tx
	var users int
	var rewinds uint64
	for try := 0; ; try++ {
		if rtx, err = db.r.BeginTx(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := rtx.QueryRow("SELECT count(*) FROM users").Scan(&users); err != nil {
			t.Fatal(err)
		}
		rewinds = db.ckpt.rewinds.Load()
		write(600)
		got := db.ckpt.rewinds.Load()
		if got == rewinds {
			break
		}
		rtx.Rollback()
		if try == 4 {
			t.Fatalf("%d rewinds while a reader held the WAL (%d tries)", got-rewinds, try+1)
		}
	}
	held := walFrames()
	t.Logf("WAL held back: %d frames", held)
	if held <= 4*restart {
		t.Fatalf("WAL of %d frames while a reader held it: want it to grow past %d", held, 4*restart)
	}
	var still int
	if err := rtx.QueryRow("SELECT count(*) FROM users").Scan(&still); err != nil || still != users {
		t.Fatalf("the reader's snapshot moved: %d users, then %d (%v)", users, still, err)
	}
	rtx.Rollback()

	// Released: caught up and rewound again; the file does not grow.
	write(1500)
	if got := db.ckpt.rewinds.Load(); got == rewinds {
		t.Fatal("no rewind after the reader let go")
	}
	if f, last := walFrames(), db.ckpt.frames.Load(); f > held+restart || last > 4*restart {
		t.Fatalf("WAL file of %d frames (%d while held), %d in use, after the reader let go: not rewound", f, held, last)
	}
	// Rewound after it grew past the limit: the file was cut back to it
	// (and grows again only as far as the WAL in use).
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() > limit+4*restart*(4096+24) {
		t.Fatalf("WAL file of %v bytes after rewinds (%v): not cut back to %d", st.Size(), err, limit)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var count int
	var check string
	if err := db.r.QueryRow("SELECT count(*) FROM users").Scan(&count); err != nil || count != n {
		t.Fatalf("%d users after reopen, want %d (%v)", count, n, err)
	}
	if err := db.r.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q %v", check, err)
	}
}

// TestCheckpointInCommitWhenAsked: a negative CheckpointInterval gives
// the writer SQLite's own automatic checkpoint back, and no checkpointer.
func TestCheckpointInCommitWhenAsked(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "hearth.db"), Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.w.QueryRow("PRAGMA wal_autocheckpoint").Scan(&n); err != nil || n != 1000 {
		t.Fatalf("writer wal_autocheckpoint = %d (%v), want 1000", n, err)
	}
	if db.ckpt != nil {
		t.Fatal("a checkpointer runs")
	}
}

// TestCheckpointFailureLogged: a background checkpoint that fails is
// reported once (not at every commit), writes still commit, and its
// recovery is reported too.
func TestCheckpointFailureLogged(t *testing.T) {
	var logs lockedLog
	db, err := Open(filepath.Join(t.TempDir(), "hearth.db"), Options{CheckpointInterval: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	n := 0
	write := func() {
		t.Helper()
		n++
		name := fmt.Sprint("u", n)
		if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertUser(&User{Name: name, PassHash: "h", CreatedMs: 1}) }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // the checkpointer runs
	}
	working := db.ckpt.conn.Load()
	broken, err := sql.Open(driverName, "file:"+filepath.Join(t.TempDir(), "missing", "x.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	db.ckpt.conn.Store(broken) // every checkpoint fails now
	for range 5 {
		write()
	}
	if got := strings.Count(logs.String(), "WAL checkpoint failed"); got != 1 {
		t.Fatalf("%d failure reports for 5 failing checkpoints, want 1:\n%s", got, logs.String())
	}
	db.ckpt.conn.Store(working)
	for range 3 {
		write()
	}
	if !strings.Contains(logs.String(), "WAL checkpoint works again") {
		t.Fatalf("recovery not reported:\n%s", logs.String())
	}
}

// lockedLog is a log sink safe for the checkpointer's goroutine.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

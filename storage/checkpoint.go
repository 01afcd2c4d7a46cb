package storage

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"time"
)

// The WAL checkpoint happens beside the writer, not inside its commits.
//
// With SQLite's default (wal_autocheckpoint=1000), the COMMIT that takes
// the WAL past 1,000 frames copies every frame not yet in the database file
// and fsyncs that file, on the writer's goroutine: under load, about one
// transaction in ten took 10 ms or more, and every request queued behind it
// waited. Here every connection has wal_autocheckpoint=0, and:
//
//   - a checkpointer goroutine with a connection of its own runs a PASSIVE
//     checkpoint after commits, at most every Options.CheckpointInterval.
//     PASSIVE never blocks the writer nor the readers; it copies the frames
//     that no reader still needs and fsyncs the database file while the
//     writer goes on appending to the WAL.
//   - a WAL is only rewound to its start (reused from frame 1) by a write
//     transaction that begins when every frame is already in the database
//     file, which under steady writes never happens by itself: when the
//     checkpointer finds it caught up with a WAL of Options.RestartFrames
//     frames or more, it asks the writer, which runs one PASSIVE
//     checkpoint itself after its next COMMIT. That one copies only the
//     frames committed since (the checkpointer did the rest), and the
//     next transaction rewinds the WAL.
//
// Durability does not change: every transaction is committed and fsynced
// in the WAL before anyone is answered, as before; the checkpoint only
// moves committed pages into the database file.

// checkpointer runs the background checkpoints of a DB.
type checkpointer struct {
	conn     atomic.Pointer[sql.DB] // one connection of its own (tests swap it)
	log      *slog.Logger
	interval time.Duration
	restart  int // WAL frames at or above which the WAL is rewound
	kick     chan struct{}
	closing  chan struct{}
	done     chan struct{}

	restartDue atomic.Bool // set by run, taken by the writer after a COMMIT

	// Counted for tests and figures.
	runs    atomic.Uint64 // background checkpoints that ran
	rewinds atomic.Uint64 // checkpoints by the writer that left the WAL to be rewound
	frames  atomic.Int64  // the WAL's length (frames) at the last background checkpoint
}

func newCheckpointer(conn *sql.DB, log *slog.Logger, interval time.Duration, restart int) *checkpointer {
	c := &checkpointer{
		log: log, interval: interval, restart: restart,
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.conn.Store(conn)
	go c.run()
	return c
}

// committed tells the checkpointer that the writer committed; it never
// blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	failing := false
	for {
		select {
		case <-c.kick:
		case <-c.closing:
			return
		}
		busy, log, done, err := walCheckpoint(c.conn.Load())
		// A failed checkpoint (a disk error) is tried again after the
		// next commit; the operator hears of it once when it starts
		// failing and once when it works again (the WAL grows meanwhile),
		// and the writer's own commits report the disk's errors.
		if err != nil && !failing {
			c.log.Error("storage: WAL checkpoint failed; the WAL grows until one succeeds", "err", err)
		} else if err == nil && failing {
			c.log.Info("storage: WAL checkpoint works again")
		}
		failing = err != nil
		if err == nil {
			c.runs.Add(1)
			c.frames.Store(int64(log))
			// Caught up (no reader held frames back) with a long WAL:
			// the writer rewinds it.
			if busy == 0 && log >= c.restart && done == log {
				c.restartDue.Store(true)
			}
		}
		pause.Reset(c.interval)
		select {
		case <-pause.C:
		case <-c.closing:
			return
		}
	}
}

// afterCommit is the writer's part, called on the writer goroutine after
// each successful COMMIT: the rewind when it is due, then a kick.
func (c *checkpointer) afterCommit(w *sql.DB) {
	if c.restartDue.Swap(false) {
		// Busy (the background checkpoint is running again) is harmless:
		// the next background run asks again.
		if busy, log, done, err := walCheckpoint(w); err == nil && busy == 0 && done == log {
			c.rewinds.Add(1) // the next transaction starts the WAL over
		}
	}
	c.committed()
}

func (c *checkpointer) close() {
	close(c.closing)
	<-c.done
}

// walCheckpoint runs a PASSIVE checkpoint on conn: busy is 1 when another
// checkpoint was running, log the WAL's frames, done those now in the
// database file.
func walCheckpoint(conn *sql.DB) (busy, log, done int, err error) {
	err = conn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done)
	return busy, log, done, err
}

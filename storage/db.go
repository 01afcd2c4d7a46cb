package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// driverName is mattn/go-sqlite3 with a connect hook for the settings the
// DSN cannot carry.
const driverName = "sqlite3-hearth"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// Statement journals (every UPDATE inside our savepoints writes
		// one) and temporary b-trees stay in memory: as files they cost a
		// file creation and writes per statement. No connection
		// checkpoints the WAL in its COMMIT: the checkpointer does
		// (checkpoint.go).
		if _, err := c.Exec("PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0", nil); err != nil {
			return err
		}
		// The dedup records' key, for migration 0016 (sendrecords.go).
		return c.RegisterFunc("hearth_send_key", sendKey, true)
	}})
}

// Options tunes the database. Zero values mean the defaults noted.
type Options struct {
	ReadConns   int           // read pool size; default 4
	BusyTimeout time.Duration // SQLite busy_timeout; default 5s
	MaxBatch    int           // most write requests grouped into one transaction; default 512
	// CommitDelay is how long the writer waits for more requests before
	// it begins a transaction, when the previous one carried more than one
	// (several callers are writing: waiting lets one commit and its fsync
	// serve more of them). A lone writer never waits. Default 500µs;
	// negative: never wait.
	CommitDelay time.Duration
	// AckDelay is how long a transaction of acks alone (SubmitAck) waits
	// for another request to share its commit: an ack's durability may
	// wait (the delivery window moves when the ack is read, and a lost
	// ack only means entries pushed again), a commit and its fsync per
	// ack would cost more than the ack. Default 5ms; negative: never wait.
	AckDelay time.Duration
	// CheckpointInterval is the shortest time between two background WAL
	// checkpoints (checkpoint.go); they run after commits. Default 250ms
	// (decision 0021: a checkpoint copies the latest copy of every page
	// written since the one before, so the pages every transaction
	// rewrites are copied 4 times a second instead of 20); negative: no
	// checkpointer, SQLite checkpoints in the COMMIT that takes the WAL
	// past 1,000 frames (its default).
	CheckpointInterval time.Duration
	// RestartFrames is the WAL length (frames) at which the writer
	// rewinds the WAL once the checkpointer has caught up; default 4,000
	// (16 MiB of 4 KiB pages).
	RestartFrames int
	Log           *slog.Logger // default: discard
	// walSizeLimit is the size the WAL file is cut back to when it is
	// rewound (journal_size_limit); 64 MiB, tests set less.
	walSizeLimit int64
	// Observer, if not nil, is told about every committed batch.
	Observer CommitObserver
}

// CommitObserver watches the writer (metrics). It is called on the
// writer goroutine once per committed transaction and must be quick.
type CommitObserver interface {
	// ObserveCommit reports a committed batch: how many write requests
	// it carried, the time from BEGIN to the end of COMMIT, and the
	// COMMIT alone (with synchronous=FULL, the WAL write and its fsync).
	ObserveCommit(requests int, total, commit time.Duration)
}

func (o Options) withDefaults() Options {
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = 500 * time.Microsecond
	}
	if o.AckDelay == 0 {
		o.AckDelay = 5 * time.Millisecond
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 250 * time.Millisecond
	}
	if o.RestartFrames <= 0 {
		o.RestartFrames = 4000
	}
	if o.walSizeLimit <= 0 {
		o.walSizeLimit = 64 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Errors returned by queries. Callers test them with errors.Is.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrConflict = errors.New("storage: already exists")
	ErrClosed   = errors.New("storage: database closed")
)

// DB is an open homeserver database: one writer connection driven by the
// group-commit goroutine and a pool of read connections.
type DB struct {
	path string
	opts Options
	w    *sql.DB // exactly one connection, used only by the writer goroutine
	r    *sql.DB // read pool, query_only

	ckpt   *checkpointer // nil with a negative CheckpointInterval
	wstmts *stmtCache    // prepared statements of the writer pool (stmtcache.go)
	rstmts *stmtCache    // and of the read pool

	reqs    chan *writeReq
	closing chan struct{}
	done    chan struct{}
	closeMu sync.RWMutex // held for reading while submitting, for writing by Close
	closed  bool
	stats   writeStats
	pend    pendingRows // the writer's, reused by every transaction
	views   sendViews   // the writer's cache for ConversationForSend
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and starts the writer goroutine.
func Open(path string, opts Options) (*DB, error) {
	const op = "storage.Open"
	opts = opts.withDefaults()
	w, err := sql.Open(driverName, dsn(path, opts, false))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkPragmas(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := migrate(context.Background(), w); err != nil {
		w.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r, err := sql.Open(driverName, dsn(path, opts, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	r.SetConnMaxIdleTime(0)
	db := &DB{
		path: path, opts: opts, w: w, r: r,
		wstmts:  newStmtCache(w),
		rstmts:  newStmtCache(r),
		reqs:    make(chan *writeReq, opts.MaxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := db.prepareHot(context.Background()); err != nil {
		db.w.Close()
		db.r.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := db.startCheckpointer(); err != nil {
		db.w.Close()
		db.r.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	go db.writer()
	return db, nil
}

// dsn builds the mattn/go-sqlite3 connection string. Every connection gets
// WAL, synchronous=FULL, a busy timeout and foreign keys; the writer begins
// IMMEDIATE transactions, readers are query_only.
func dsn(path string, o Options, readOnly bool) string {
	v := url.Values{}
	v.Set("_journal_mode", "WAL")
	v.Set("_synchronous", "FULL")
	v.Set("_busy_timeout", fmt.Sprint(o.BusyTimeout.Milliseconds()))
	v.Set("_foreign_keys", "on")
	v.Set("_txlock", "immediate")
	// The writer's page cache holds a whole large fan-out (one mailbox leaf
	// per recipient: ≈ 2,000 dirty pages for 1,024 members) without
	// spilling dirty pages mid-transaction, and no more: every COMMIT walks
	// the cache's hash table (SQLite's pager_end_transaction truncates the
	// cache to the database's size), which at 64 MiB cost ≈ 2.6 % of the
	// server's CPU (docs/benchmarks.md, "Session 12 side by side").
	v.Set("_cache_size", "-16384") // KiB
	if readOnly {
		v.Set("_query_only", "true")
		v.Set("_txlock", "deferred")
		v.Set("_cache_size", "-8192")
	}
	return "file:" + path + "?" + v.Encode()
}

// checkPragmas makes sure the settings that durability depends on are on:
// a DSN typo must not silently give us a rollback journal or NORMAL sync.
func checkPragmas(db *sql.DB) error {
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	var syncMode, fk int
	if err := db.QueryRow("PRAGMA synchronous").Scan(&syncMode); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if err := db.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if mode != "wal" || syncMode != 2 || fk != 1 {
		return fmt.Errorf("pragmas not applied: journal_mode=%s synchronous=%d foreign_keys=%d", mode, syncMode, fk)
	}
	return nil
}

// startCheckpointer starts the background checkpoints on a connection of
// their own or, with a negative CheckpointInterval, gives the writer
// SQLite's own automatic checkpoint back.
func (db *DB) startCheckpointer() error {
	// A WAL that grew long (a backup held it for a while) is cut back to
	// this size when it is next rewound; SQLite otherwise keeps the file
	// at its largest.
	if _, err := db.w.Exec(fmt.Sprintf("PRAGMA journal_size_limit = %d", db.opts.walSizeLimit)); err != nil {
		return fmt.Errorf("journal_size_limit: %w", err)
	}
	if db.opts.CheckpointInterval < 0 {
		if _, err := db.w.Exec("PRAGMA wal_autocheckpoint = 1000"); err != nil {
			return fmt.Errorf("wal_autocheckpoint: %w", err)
		}
		return nil
	}
	c, err := sql.Open(driverName, dsn(db.path, db.opts, false))
	if err != nil {
		return fmt.Errorf("checkpointer: %w", err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxLifetime(0)
	c.SetConnMaxIdleTime(0)
	db.ckpt = newCheckpointer(c, db.opts.Log, db.opts.CheckpointInterval, db.opts.RestartFrames)
	db.ckpt.committed() // whatever the migrations wrote
	return nil
}

// Path returns the database file name.
func (db *DB) Path() string { return db.path }

// Close stops the writer after it finished the requests already submitted
// and closes every connection. Later Write calls return ErrClosed.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	close(db.closing)
	db.closeMu.Unlock()
	<-db.done
	var cerr error
	if db.ckpt != nil {
		db.ckpt.close()
		cerr = db.ckpt.conn.Load().Close()
	}
	db.wstmts.close()
	db.rstmts.close()
	return errors.Join(db.r.Close(), cerr, db.w.Close())
}

// prepareHot prepares the hot-path queries on both pools before any
// transaction runs; the other queries are learned on first use
// (stmtcache.go).
func (db *DB) prepareHot(ctx context.Context) error {
	if err := db.wstmts.learn(ctx, hotQueries); err != nil {
		return err
	}
	return db.rstmts.learn(ctx, hotQueries)
}

// stmtCache returns the statement cache of the writer or the read pool.
func (db *DB) stmtCache(write bool) *stmtCache {
	if write {
		return db.wstmts
	}
	return db.rstmts
}

// Read runs fn in a read-only transaction on the read pool: every query in
// fn sees one consistent snapshot. Write methods of Tx fail inside Read.
func (db *DB) Read(ctx context.Context, fn func(*Tx) error) error {
	var missed []string
	err := db.readTx(ctx, fn, &missed)
	if len(missed) > 0 {
		// The connection is back in the pool: prepare the new queries on
		// the pool once, so later transactions find them. (They prepared
		// fine in fn even when fn failed, e.g. with ErrNotFound.)
		if lerr := db.rstmts.learn(context.WithoutCancel(ctx), missed); lerr != nil {
			db.opts.Log.Warn("storage: statement not cached", "err", lerr)
		}
	}
	return err
}

func (db *DB) readTx(ctx context.Context, fn func(*Tx) error, missed *[]string) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("storage.Read: begin: %w", err)
	}
	defer tx.Rollback()
	t := &Tx{ctx: ctx, tx: tx, db: db, write: false, missed: missed}
	defer t.closeStmts()
	if err := fn(t); err != nil {
		return err
	}
	return tx.Commit()
}

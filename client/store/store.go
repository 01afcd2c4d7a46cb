//go:build !js

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the name of the bbolt file inside a profile folder.
const FileName = "hearth.db"

// Store is a profile store. It is safe for concurrent use, also by
// several processes (`hearth chat recv --follow` and `hearth chat send` on
// one profile): the bbolt file is kept open (and flock-locked) while this
// process's transactions keep coming and released after idle of silence, or
// at once when another process asks for it (the want file, see doc.go). Every
// transaction reads the state the previous one (of any process) committed.
type Store struct {
	path     string
	wantPath string // another process waits for the file while this one exists
	timeout  time.Duration
	idle     time.Duration

	mu       sync.Mutex
	cond     *sync.Cond  // signalled when refs drops to 0
	db       *bolt.DB    // open while transactions come (see acquire/release)
	refs     int         // transactions running
	yielding bool        // another process wants the file: close as soon as refs is 0
	yieldAt  time.Time   // when this process last gave the file away
	timer    *time.Timer // while open: checks idleness and the want file every wantPoll
	polling  bool        // timer is pending
	lastEnd  time.Time
	lastWant time.Time  // last look for the want file
	watch    *wantWatch // while open: the want file's folder watched (want_linux.go), or nil
	// What the last stat of the want file found, and the watch's stamp
	// before it: while the stamp stays, a look need not stat again.
	wantKnown bool
	wantStamp uint64
	wantUntil time.Time    // the want file found counts until then (zero: none found)
	wantStats int          // stats of the want file (tests)
	opens     int          // how often the file was opened (tests, benchmarks)
	written   bolt.TxStats // the write counters of the files closed (PageWrites)
	sealer    *sealer      // encrypts record values; nil: a profile without passphrase (crypt.go)
	damaged   error        // the file is damaged (damage.go): every transaction fails with it
	file      *os.File     // db's file (markDamaged closes it)
	later     laterWrites
	acct      recCache[Account]  // the decoded account (reccache.go)
	sig       recCache[[]byte]   // the signature key (reccache.go)
	keys      recCache[struct{}] // a check of the keys bucket (Tx.KeysChecked)
	trees     treesMemo          // the trees each conversation's bucket holds (treesmemo.go)
	// seen is the id of the newest transaction of this process that
	// committed or read since the file was opened (0: none yet): the
	// state the caches are read at without a transaction (Cached*).
	seen  int
	peeks atomic.Uint64 // read transactions run (Peeks; benchmarks count them)
	// plain is the open file on which a write transaction found the
	// profile unencrypted. No other process can encrypt it while this one
	// holds the file (bbolt's exclusive lock), and this one encrypts it in
	// a write transaction that clears plain (write transactions run one
	// at a time): lockedElsewhere reads the crypt bucket once per opening
	// of the file, not in every transaction.
	plain atomic.Pointer[bolt.DB]
}

// Options are how a profile is opened.
type Options struct {
	// Passphrase unlocks an encrypted profile, or encrypts a new one
	// (crypt.go). Empty: the profile must not be encrypted.
	Passphrase []byte
	// Keyring, without a Passphrase, opens a profile whose key is kept in
	// the OS keyring, and encrypts a new profile with a random key kept
	// there. Nil: no keyring (a keyring-encrypted profile is
	// ErrKeyringLocked).
	Keyring Keyring
}

// Timing of the shared-file protocol (doc.go).
const (
	// IdleRelease is how long the file stays open after the last transaction
	// when no other process asks for it.
	IdleRelease = 500 * time.Millisecond
	// wantPoll is how often an idle open Store looks for the want file;
	// a busy one looks at most every wantBusy (a stat costs microseconds).
	wantPoll = 50 * time.Millisecond
	wantBusy = 20 * time.Millisecond
	// openRetry is how often a process waiting for the file tries again.
	openRetry = 2 * time.Millisecond
	// yieldFor is how long a process that gave the file away waits before
	// taking it again, so that the waiting process (trying every openRetry)
	// gets it.
	yieldFor = 15 * time.Millisecond
	// wantFresh is how old a want file may be and still count.
	wantFresh = time.Second
)

// Open prepares the store in profile folder dir, creating the folder (mode
// 0700) and the file (0600) if needed. A transaction waits up to timeout
// for another process to release the file.
func Open(dir string, timeout time.Duration) (*Store, error) {
	return OpenWith(dir, timeout, Options{})
}

// OpenWith is Open with options. A wrong or missing passphrase for an
// encrypted profile is ErrPassphrase or ErrLocked, a passphrase for an
// unencrypted profile that holds an account is ErrNotEncrypted; the
// profile is not changed then.
func OpenWith(dir string, timeout time.Duration, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create profile folder: %w", err)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	path := filepath.Join(dir, FileName)
	s := &Store{path: path, wantPath: path + ".want", timeout: timeout, idle: IdleRelease}
	s.cond = sync.NewCond(&s.mu)
	err := s.update(func(t *Tx) error {
		if err := createBuckets(t); err != nil {
			return err
		}
		sl, err := unlock(t, opts.Passphrase, opts.Keyring)
		if err != nil {
			return err
		}
		t.s, s.sealer = sl, sl
		if err := migrateLayout(t); err != nil {
			return err
		}
		if t.bucket(bOutQueues) == nil {
			if _, err := t.tx.CreateBucket(bOutQueues); err != nil {
				return fmt.Errorf("store: create buckets: %w", err)
			}
			return indexOutbox(t)
		}
		return nil
	}, false)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the file once the transactions running have finished. The
// Store stays usable: a later transaction opens the file again.
func (s *Store) Close() error {
	werr := s.WriteLater()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.damaged != nil {
		return nil // the file is closed already; a transaction stuck in bbolt would never end
	}
	for s.refs > 0 {
		s.cond.Wait()
	}
	return errors.Join(werr, s.closeLocked())
}

func (s *Store) closeLocked() error {
	if s.timer != nil && s.timer.Stop() {
		s.polling = false
	}
	if s.db == nil {
		return nil
	}
	st := s.db.Stats().TxStats
	s.written.IncWrite(st.GetWrite())
	s.written.IncSpill(st.GetSpill())
	s.written.IncSplit(st.GetSplit())
	err := s.db.Close()
	s.db, s.file = nil, nil
	unwatchWant(s.watch)
	s.watch, s.wantKnown = nil, false
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// acquire returns the open file for one transaction, opening it (and
// taking its lock) if needed.
func (s *Store) acquire() (*bolt.DB, *sealer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.damaged != nil {
		return nil, nil, s.damaged
	}
	// While yielding, transactions still start on the open file (one may be
	// nested in another); the file is closed the moment none runs.
	if s.db == nil {
		if err := s.openLocked(); err != nil {
			return nil, nil, err
		}
	}
	s.refs++
	return s.db, s.sealer, nil
}

// openLocked opens the file, trying every openRetry and marking the want
// file while another process holds it, for up to s.timeout.
func (s *Store) openLocked() error {
	if d := yieldFor - time.Since(s.yieldAt); d > 0 {
		time.Sleep(d) // just gave the file away: let the other process take it
	}
	deadline := time.Now().Add(s.timeout)
	for {
		db, f, err := openBolt(s.path, boltOptions(time.Nanosecond)) // one flock attempt
		if err == nil {
			s.db, s.file = db, f
			s.opens++
			s.watch, s.wantKnown = watchWant(s.wantPath), false
			s.acct.reset() // another process may have changed them
			s.sig.reset()
			s.keys.reset()
			s.trees.reset()
			s.seen = 0
			os.Remove(s.wantPath) // served; other waiters mark it again
			return nil
		}
		if !errors.Is(err, bolt.ErrTimeout) {
			if err = openError(s.path, err); errors.Is(err, ErrDamaged) {
				s.damaged = err
				return err
			}
			return fmt.Errorf("store: open: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("store: profile %s stayed busy in another process for %v", filepath.Dir(s.path), s.timeout)
		}
		s.markWant()
		time.Sleep(openRetry)
	}
}

// boltOptions are the options every open of the profile file uses, with
// a lock timeout: the freelist is a hash map (allocating from it and
// freeing into it does not scan or re-sort an array of free pages).
//
// The freelist is still written at every commit (NoFreelistSync off),
// although durability would allow leaving it out (bbolt rebuilds it from
// the reachable pages on open): that rebuild walks the pages in goroutines
// of bbolt's own, where a page check's panic on a damaged file cannot be
// recovered (damage.go), so a damaged profile would crash the process
// instead of being reported as ErrDamaged (TestDamagedStore/pages_garbage crashes that way).
func boltOptions(timeout time.Duration) bolt.Options {
	return bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType}
}

// lockedElsewhere is lockedElsewhere(tx, sl), skipped once a write
// transaction on db found the profile unencrypted (see plain). A read
// transaction does not mark it: it may read from before an encryption
// that has committed since.
func (s *Store) lockedElsewhere(db *bolt.DB, tx *bolt.Tx, sl *sealer) error {
	if sl != nil || s.plain.Load() == db {
		return nil
	}
	if err := lockedElsewhere(tx, sl); err != nil {
		return err
	}
	if tx.Writable() {
		s.plain.Store(db)
	}
	return nil
}

// markWant tells the process holding the file that this one waits for it.
func (s *Store) markWant() {
	now := time.Now()
	if err := os.Chtimes(s.wantPath, now, now); err != nil {
		if f, err := os.OpenFile(s.wantPath, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	}
}

// Opens returns how often the file was opened since the Store was made
// (a busy store keeps it open; an idle one closes it after IdleRelease).
// Tests use it to tell a check done again after a reopen from one done
// for nothing.
func (s *Store) Opens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}

// wanted reports whether another process marked the want file recently.
// Where the folder is watched (want_linux.go) the file is looked at again
// only after an event about it; until then the last look's answer holds.
func (s *Store) wanted() bool {
	stamp, watched := s.watch.stamp()
	if !watched || !s.wantKnown || stamp != s.wantStamp {
		fi, err := os.Stat(s.wantPath)
		s.wantStats++
		s.wantKnown, s.wantStamp, s.wantUntil = watched, stamp, time.Time{}
		if err == nil {
			s.wantUntil = fi.ModTime().Add(wantFresh)
		}
	}
	return time.Now().Before(s.wantUntil)
}

// release ends one transaction. The file is closed when another process
// wants it (as soon as no transaction runs) or after s.idle without any.
func (s *Store) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if now := time.Now(); !s.yielding && now.Sub(s.lastWant) >= wantBusy {
		s.lastWant = now
		s.yielding = s.wanted()
	}
	if s.refs > 0 {
		return
	}
	s.lastEnd = time.Now()
	if s.yielding {
		s.closeLocked()
		s.yielding = false
		s.yieldAt = time.Now()
		s.cond.Broadcast()
		return
	}
	s.cond.Broadcast()
	if s.polling {
		return
	}
	s.polling = true
	if s.timer == nil {
		s.timer = time.AfterFunc(wantPoll, s.idleCheck)
	} else {
		s.timer.Reset(wantPoll)
	}
}

// idleCheck runs every wantPoll while the file is open and no transaction
// runs: it closes the file when another process wants it or when no
// transaction ran for s.idle.
func (s *Store) idleCheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polling = false
	if s.db == nil || s.refs > 0 {
		return // closed meanwhile, or busy: the next release polls again
	}
	if s.wanted() {
		s.closeLocked()
		s.yieldAt = time.Now()
		return
	}
	if time.Since(s.lastEnd) >= s.idle {
		s.closeLocked()
		return
	}
	s.polling = true
	s.timer.Reset(wantPoll)
}

// WriteStats returns how many pages bbolt wrote (the meta and freelist
// pages included), nodes it spilled and nodes it split in this Store's
// committed transactions: benchmarks count them per message.
func (s *Store) WriteStats() (pages, spills, splits int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pages, spills, splits = s.written.GetWrite(), s.written.GetSpill(), s.written.GetSplit()
	if s.db != nil {
		st := s.db.Stats().TxStats
		pages, spills, splits = pages+st.GetWrite(), spills+st.GetSpill(), splits+st.GetSplit()
	}
	return pages, spills, splits
}

// Path is the profile's bbolt file.
func (s *Store) Path() string { return s.path }

// Compact rewrites the profile file with only its live records: bbolt
// leaves deleted and overwritten values in free pages of the file, and a
// secret that must not stay on the device (a recovery key after the first
// login, plaintext after `chat profile encrypt`) is gone from the disk
// file only once they are dropped. Another process opening the profile
// meanwhile waits for the store's lock as usual.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.refs > 0 {
		s.cond.Wait()
	}
	if s.db == nil {
		if err := s.openLocked(); err != nil {
			return err
		}
	}
	tmp := s.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := bolt.Compact(dst, s.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return s.closeLocked() // the next transaction opens the new file
}

// Update runs fn in one read-write transaction. Its changes become durable
// (fsynced) together when fn returns nil, and are discarded otherwise.
func (s *Store) Update(fn func(*Tx) error) error { return s.update(fn, true) }

// updateTx runs update's transaction; the transaction that opens the
// store (and reads the key derivation record) runs without the check for
// an encryption made by another process.
func (s *Store) updateTx(fn func(*Tx) error, check bool) error {
	db, sl, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var keys []string
	var fns map[string]laterWrite
	txid := 0
	err = s.markDamaged(guarded(s.path, func() error {
		return db.Update(func(tx *bolt.Tx) error {
			txid = tx.ID()
			// Taken under bbolt's write lock: a View that finds writes
			// taken runs an Update, which then waits for this one to
			// commit them (taken before the lock, another Update could
			// take the lock first and read without them).
			keys, fns = s.later.take()
			if check {
				if err := s.lockedElsewhere(db, tx, sl); err != nil {
					return err
				}
			}
			t := &Tx{tx: tx, s: sl, acct: &s.acct, sig: &s.sig, keys: &s.keys, trees: &s.trees, id: txid}
			if err := runLater(t, keys, fns); err != nil {
				return err
			}
			return fn(t)
		})
	}))
	s.later.settle(err == nil, keys, fns)
	if err != nil && txid != 0 {
		s.acct.failed(txid)
		s.sig.failed(txid)
		s.keys.failed(txid)
		s.trees.failed(txid)
	}
	if err == nil {
		s.saw(txid)
	}
	return err
}

// View runs fn in a read-only transaction. fn must not call write methods.
// Writes put off by Later are committed first (fn then runs in that
// read-write transaction), so fn sees them, unless an Update runs (it may
// be the caller's own: fn then reads as a Peek does).
func (s *Store) View(fn func(*Tx) error) error {
	if s.viewWrites() {
		return s.Update(fn)
	}
	return s.Peek(fn)
}

// Peek is View without the writes put off by Later: for readers that
// keep their own account of what they put off (they must not read what
// those writes change, or must know it is not there yet).
func (s *Store) Peek(fn func(*Tx) error) error {
	db, sl, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	s.peeks.Add(1)
	txid := 0
	err = s.markDamaged(guarded(s.path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			txid = tx.ID()
			if err := s.lockedElsewhere(db, tx, sl); err != nil {
				return err
			}
			return fn(&Tx{tx: tx, s: sl, acct: &s.acct, sig: &s.sig, keys: &s.keys, id: txid, ro: true})
		})
	}))
	if err == nil {
		s.saw(txid)
	}
	return err
}

// forgetPlain drops the mark that the open file was found unencrypted
// (plain): the profile is being encrypted.
func (s *Store) forgetPlain() { s.plain.Store(nil) }

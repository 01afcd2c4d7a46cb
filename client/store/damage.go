//go:build !js

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is wrapped by every error that comes from a profile file bbolt
// cannot read: not a bbolt file, a bad checksum, or pages that make bbolt
// panic or fault while reading them. Nothing is written to such a file;
// Check reports it and Repair copies what is readable or moves it aside.
var ErrDamaged = errors.New("the profile store is damaged")

// damagedError names the file and what is wrong with it.
type damagedError struct {
	path, detail string
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", ErrDamaged, e.path, e.detail)
}

func (e *damagedError) Unwrap() error { return ErrDamaged }

// DamagedFile returns the path of the damaged file err names, if err is a
// damage error.
func DamagedFile(err error) (string, bool) {
	var d *damagedError
	if errors.As(err, &d) {
		return d.path, true
	}
	return "", false
}

// openError turns what bolt.Open says about a bad file into a damage
// error: anything but a timeout or a system call's failure (permissions,
// disk) is about the file's content.
func openError(path string, err error) error {
	var pathErr *fs.PathError
	var errno syscall.Errno
	if errors.Is(err, berrors.ErrTimeout) || errors.As(err, &pathErr) || errors.As(err, &errno) {
		return err
	}
	return &damagedError{path: path, detail: err.Error()}
}

// guarded runs fn and turns a panic or memory fault raised inside bbolt
// (what it does on pages that do not hold what they should) into a damage
// error. A panic raised elsewhere (a bug in fn) goes on as it was.
func guarded(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !panickedInBolt() {
			panic(r)
		}
		err = &damagedError{path: path, detail: fmt.Sprint(r)}
	}()
	return fn()
}

// panickedInBolt reports whether the panic being recovered was raised in
// bbolt: the first frame below the runtime's panic machinery is bbolt's.
func panickedInBolt() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	inPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			inPanic = true
		case inPanic && !strings.HasPrefix(f.Function, "runtime."):
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}

// markDamaged remembers that the file is damaged: later transactions of
// this Store fail with err at once. The file is closed under bbolt (whose
// locks a panic may have left taken, so that closing the DB could block),
// which releases its lock for `chat doctor`.
func (s *Store) markDamaged(err error) error {
	if _, ok := DamagedFile(err); ok {
		s.mu.Lock()
		if s.damaged == nil {
			s.damaged = err
		}
		if s.file != nil {
			unlockFile(s.file)
			s.file.Close()
			s.file, s.db = nil, nil
			unwatchWant(s.watch)
			s.watch = nil
		}
		s.mu.Unlock()
	}
	return err
}

// Report is what Check found in a profile's store.
type Report struct {
	Path   string
	Size   int64
	Keys   int    // records read
	User   string // the account's user, if readable
	Device string // the account's device id, if readable
}

// Check reads every record of the store in profile folder dir (which must
// not be in use by another process) and returns what it found, or an error
// wrapping ErrDamaged if the file cannot be read whole. A folder without a
// store is an error wrapping os.ErrNotExist.
func Check(dir string) (Report, error) {
	path := filepath.Join(dir, FileName)
	r := Report{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return r, err
	}
	r.Size = fi.Size()
	db, err := openForCheck(path, true)
	if err != nil {
		return r, err
	}
	defer db.Close()
	err = guarded(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			if err := walk(tx, func(_ [][]byte, _, _ []byte) error { r.Keys++; return nil }); err != nil {
				return err
			}
			for err := range tx.Check() {
				return &damagedError{path: path, detail: err.Error()}
			}
			r.User, r.Device = accountOf(tx)
			return nil
		})
	})
	return r, err
}

// openBolt opens the bbolt file at path. When bbolt panics or faults on a
// damaged file while opening it, the error wraps ErrDamaged and the file
// is closed (releasing its lock) all the same.
func openBolt(path string, opts bolt.Options) (*bolt.DB, *os.File, error) {
	var f *os.File
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	var db *bolt.DB
	err := guarded(path, func() (err error) {
		db, err = bolt.Open(path, 0o600, &opts)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrDamaged) && f != nil {
			unlockFile(f)
			f.Close()
		}
		return nil, nil, err
	}
	return db, f, nil
}

// openForCheck opens the file at path for Check or Repair, failing at once
// when another process holds it.
func openForCheck(path string, readOnly bool) (*bolt.DB, error) {
	db, _, err := openBolt(path, bolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is in use by another hearth process; stop it and try again", path)
	}
	if err != nil {
		return nil, openError(path, err)
	}
	return db, nil
}

// accountOf reads the account's user and device, "" if it cannot.
func accountOf(tx *bolt.Tx) (user, device string) {
	t := &Tx{tx: tx}
	a, err := t.Account()
	if err != nil {
		return "", ""
	}
	return a.User, a.DeviceID
}

// walk calls fn for every key and value (nil for a nested bucket) of every
// bucket, with the bucket path.
func walk(tx *bolt.Tx, fn func(path [][]byte, k, v []byte) error) error {
	var visit func(path [][]byte, b *bolt.Bucket) error
	visit = func(path [][]byte, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if err := fn(path, k, v); err != nil {
				return err
			}
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return visit(append(path[:len(path):len(path)], k), nb)
				}
			}
			return nil
		})
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if err := fn(nil, name, nil); err != nil {
			return err
		}
		return visit([][]byte{name}, b)
	})
}

// RepairResult says what Repair did.
type RepairResult struct {
	// Copied is true when every record was read and written to a fresh
	// file that replaced the damaged one; false when the damaged file was
	// only moved aside (the profile then starts empty: log in again).
	Copied bool
	// MovedTo is where the damaged file now is.
	MovedTo string
	Report  Report // of the damaged file, as far as it could be read
}

// Repair replaces a damaged store in profile folder dir. It copies every
// record into a fresh file when all of them can be read (damage only in
// pages no record uses), and otherwise moves the damaged file aside so
// that the profile starts empty. The damaged file is always kept, renamed
// to hearth.db.damaged-TIME. The folder must not be in use by another
// process.
func Repair(dir string, now time.Time) (RepairResult, error) {
	path := filepath.Join(dir, FileName)
	var res RepairResult
	rep, checkErr := Check(dir)
	res.Report = rep
	if checkErr == nil {
		return res, nil
	}
	if !errors.Is(checkErr, ErrDamaged) {
		return res, checkErr
	}
	fresh := path + ".repair"
	os.Remove(fresh)
	if err := copyReadable(path, fresh); err == nil {
		res.Copied = true
	} else {
		os.Remove(fresh)
	}
	res.MovedTo = fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, res.MovedTo); err != nil {
		return res, fmt.Errorf("store: move %s aside: %w", path, err)
	}
	os.Remove(path + ".want")
	if res.Copied {
		if err := os.Rename(fresh, path); err != nil {
			return res, fmt.Errorf("store: put the repaired copy in place: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return res, nil
}

// copyReadable copies every bucket and record of the file at src into a
// new file dst, failing if any of them cannot be read.
func copyReadable(src, dst string) error {
	in, err := openForCheck(src, true)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = guarded(src, func() error {
		return in.View(func(itx *bolt.Tx) error {
			return out.Update(func(otx *bolt.Tx) error {
				return walk(itx, func(path [][]byte, k, v []byte) error {
					if len(path) == 0 {
						_, err := otx.CreateBucket(k)
						return err
					}
					b := otx.Bucket(path[0])
					for _, p := range path[1:] {
						b = b.Bucket(p)
					}
					if v == nil {
						_, err := b.CreateBucket(k)
						return err
					}
					return b.Put(append([]byte(nil), k...), append([]byte(nil), v...))
				})
			})
		})
	})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

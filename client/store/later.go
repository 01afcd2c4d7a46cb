package store

import (
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
)

// laterWrites holds the writes put off by Later until the next Update,
// and counts committed read-write transactions.
type laterWrites struct {
	// updating counts the Updates running (or waiting for the write
	// lock). While one runs, a View checks whether it is called inside an
	// Update of its own goroutine (nestedInUpdate): it must not start an
	// Update then, which would wait for the first forever (see View); a
	// View on any other goroutine does, and so reads what was put off.
	updating atomic.Int32

	mu      sync.Mutex
	keys    []string // in the order first queued
	taken   int      // writes taken by an Update that has not ended yet
	fns     map[string]laterWrite
	commits uint64
}

type laterWrite struct {
	write func(*Tx) error
	done  func() // after the write committed; may be nil
}

// Later puts off a write until the next Update of this Store (of any
// caller), which runs it in its own transaction before its function, so
// that it costs no commit (and no fsync) of its own. WriteLater, Close and
// every View that is not a Peek write what is pending first.
//
// Only writes whose loss in a crash is harmless may be put off: what they
// record is redone after a restart (a message handed to the server is sent
// again under its id and deduplicated, a printed inbox batch is printed
// again). A later write under the key of a pending one replaces it. done,
// if not nil, runs once the write is committed. A write that fails makes
// the Update that ran it fail; it stays pending.
func (s *Store) Later(key string, write func(*Tx) error, done func()) {
	l := &s.later
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = map[string]laterWrite{}
	}
	if _, ok := l.fns[key]; !ok {
		l.keys = append(l.keys, key)
	}
	l.fns[key] = laterWrite{write: write, done: done}
}

// viewWrites reports whether a View should commit the pending writes
// first: some are pending and the View is not inside an Update of its own
// goroutine (it then reads without them, as a Peek).
func (s *Store) viewWrites() bool {
	return s.later.unsettled() && !(s.later.updating.Load() > 0 && nestedInUpdate())
}

// unsettled reports whether writes are put off, or taken by an Update
// that has not committed them yet (a View then waits for it by running
// an Update of its own).
func (l *laterWrites) unsettled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys) > 0 || l.taken > 0
}

// update is Update (with check: see updateTx). Its frame on a goroutine's
// stack is what tells a View nested in it (nestedInUpdate).
//
//go:noinline
func (s *Store) update(fn func(*Tx) error, check bool) error {
	s.later.updating.Add(1)
	defer s.later.updating.Add(-1)
	return s.updateTx(fn, check)
}

// updateFrame is the name of update's function in stack traces.
var updateFrame = runtime.FuncForPC(reflect.ValueOf((*Store).update).Pointer()).Name()

// nestedInUpdate reports whether the calling goroutine runs inside an
// Update: whether update is on its stack. It walks the stack's program
// counters (much cheaper than formatting a stack trace, and done only
// while an Update runs and writes are put off, not on every Update). Go
// gives a goroutine no identity to compare instead. An Update of another Store
// on the stack counts too (a View of one store inside an Update of
// another then reads as a Peek while this one's Update runs).
func nestedInUpdate() bool {
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if f.Function == updateFrame {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) || len(pcs) >= 1<<16 {
			return false
		}
		pcs = make([]uintptr, 2*len(pcs)) // a deeper stack: look at all of it
	}
}

// Pending reports whether writes put off by Later wait for an Update.
func (s *Store) Pending() bool {
	s.later.mu.Lock()
	defer s.later.mu.Unlock()
	return len(s.later.keys) > 0
}

// WriteLater commits the writes put off by Later, if any, in one Update.
func (s *Store) WriteLater() error {
	if !s.Pending() {
		return nil
	}
	return s.Update(func(*Tx) error { return nil })
}

// Commits returns how many read-write transactions this Store committed
// (each is one fsync'd commit: bbolt syncs the data pages, then the meta
// page). Benchmarks count them per message.
func (s *Store) Commits() uint64 {
	s.later.mu.Lock()
	defer s.later.mu.Unlock()
	return s.later.commits
}

// take removes the pending writes for one transaction.
func (l *laterWrites) take() (keys []string, fns map[string]laterWrite) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys, fns = l.keys, l.fns
	l.keys, l.fns = nil, nil
	l.taken += len(keys)
	return keys, fns
}

// runLater runs the pending writes in tx.
func runLater(tx *Tx, keys []string, fns map[string]laterWrite) error {
	for _, k := range keys {
		if err := fns[k].write(tx); err != nil {
			return fmt.Errorf("store: put-off write %s: %w", k, err)
		}
	}
	return nil
}

// settle ends a transaction that ran the writes taken by take: committed,
// their done funcs run; rolled back, they are pending again (behind a
// newer write of the same key, which replaces them).
func (l *laterWrites) settle(committed bool, keys []string, fns map[string]laterWrite) {
	l.mu.Lock()
	l.taken -= len(keys)
	if committed {
		l.commits++
	}
	if !committed && len(keys) > 0 {
		if l.fns == nil {
			l.fns = map[string]laterWrite{}
		}
		var requeued []string
		for _, k := range keys {
			if _, newer := l.fns[k]; !newer {
				l.fns[k] = fns[k]
				requeued = append(requeued, k)
			}
		}
		l.keys = append(requeued, l.keys...)
	}
	l.mu.Unlock()
	if committed {
		for _, k := range keys {
			if d := fns[k].done; d != nil {
				d()
			}
		}
	}
}

// DiscardLater drops the writes put off by Later without writing them, as
// a crash of the process would: crash tests, which then open the profile
// again with a new Store (the users of this one still count on them).
func (s *Store) DiscardLater() { s.later.take() }

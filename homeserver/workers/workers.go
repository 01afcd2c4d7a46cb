package workers

import (
	"sync/atomic"
	"time"
)

// Idle is how long a goroutine waits for another task after its own
// before it ends.
const Idle = 20 * time.Millisecond

var (
	work    = make(chan func()) // unbuffered: a send succeeds only to a waiting goroutine
	started atomic.Uint64       // goroutines Go started (tests)
)

// Go runs f on a goroutine: one waiting for a task if there is one, a new
// one otherwise. It never blocks, and f runs as if started with the go
// statement (whatever f's caller holds, f does not).
func Go(f func()) {
	select {
	case work <- f:
	default:
		started.Add(1)
		go loop(f)
	}
}

// loop runs f, then tasks handed by Go until none comes within Idle.
func loop(f func()) {
	var t *time.Timer
	for {
		f()
		f = nil // not kept alive while waiting
		if t == nil {
			t = time.NewTimer(Idle)
		} else {
			t.Reset(Idle)
		}
		select {
		case f = <-work:
		case <-t.C:
			return
		}
	}
}

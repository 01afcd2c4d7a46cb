package homeserver

import "sync"

// lazyQueue runs queued functions one at a time, in order, on a goroutine
// that exists only while there is something queued: an idle session holds
// no goroutine for its replies or its ephemeral pushes, only the queue's
// buffer. At most cap functions wait; push then blocks (backpressure) and
// tryPush drops.
type lazyQueue struct {
	ch      chan func()
	mu      sync.Mutex
	running bool
	wg      sync.WaitGroup
}

func newLazyQueue(capacity int) *lazyQueue {
	return &lazyQueue{ch: make(chan func(), capacity)}
}

// push queues f, waiting while the queue is full.
func (q *lazyQueue) push(f func()) {
	q.ch <- f
	q.kick()
}

// tryPush queues f unless the queue is full; it reports whether it did.
func (q *lazyQueue) tryPush(f func()) bool {
	select {
	case q.ch <- f:
		q.kick()
		return true
	default:
		return false
	}
}

// kick starts the runner unless it is running. Every push is followed by a
// kick, and the runner stops only when it finds the queue empty under mu,
// so a queued function always has a runner.
func (q *lazyQueue) kick() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running {
		return
	}
	q.running = true
	q.wg.Add(1)
	go q.run()
}

func (q *lazyQueue) run() {
	defer q.wg.Done()
	for {
		select {
		case f := <-q.ch:
			f()
		default:
			q.mu.Lock()
			if len(q.ch) == 0 {
				q.running = false
				q.mu.Unlock()
				return
			}
			q.mu.Unlock()
		}
	}
}

// wait returns when everything queued so far has run. The caller must
// make sure nothing is pushed meanwhile.
func (q *lazyQueue) wait() { q.wg.Wait() }

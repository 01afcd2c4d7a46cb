package delivery

import (
	"sync"

	"hearth/homeserver/workers"
)

// Queue runs queued functions one at a time, in order, on a goroutine
// that exists only while there is something queued. An idle session
// therefore holds neither a goroutine nor a buffer for its replies or its
// ephemeral pushes. At most limit functions wait; push then blocks
// (backpressure) and tryPush drops.
type Queue struct {
	mu      sync.Mutex
	space   sync.Cond // signalled when a waiting function is taken
	items   []func()  // nil while idle
	limit   int
	running bool
	wg      sync.WaitGroup
}

func NewQueue(limit int) *Queue {
	q := &Queue{limit: max(limit, 1)}
	q.space.L = &q.mu
	return q
}

// Push queues f, waiting while limit functions wait.
func (q *Queue) Push(f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) >= q.limit {
		q.space.Wait()
	}
	q.items = append(q.items, f)
	q.startLocked()
}

// TryPush queues f unless limit functions wait; it reports whether it did.
func (q *Queue) TryPush(f func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.limit {
		return false
	}
	q.items = append(q.items, f)
	q.startLocked()
	return true
}

func (q *Queue) startLocked() {
	if q.running {
		return
	}
	q.running = true
	q.wg.Add(1)
	workers.Go(q.run)
}

// run takes functions in order until the queue is empty, then ends; the
// next push starts a new runner.
func (q *Queue) run() {
	defer q.wg.Done()
	q.mu.Lock()
	for len(q.items) > 0 {
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.space.Signal()
		q.mu.Unlock()
		f()
		q.mu.Lock()
	}
	q.items = nil
	q.running = false
	q.mu.Unlock()
}

// Waiting returns how many functions wait to run.
func (q *Queue) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Wait returns when everything queued so far has run. The caller must
// make sure nothing is pushed meanwhile.
func (q *Queue) Wait() { q.wg.Wait() }
